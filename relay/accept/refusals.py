"""Why the relay refused a command of a mail transaction, in a postmaster's words.

`why(reply)` names the rule behind a 4xx/5xx reply to MAIL, RCPT or DATA, for
the mail log's `refused` line (`ugem.core.events.Refused`): the reply on the
wire is for the client, this is for whoever answers "why was my mail refused?".
Replies that are not in the table (syntax errors, the inbound checks' own
texts) are their own explanation: their text. Pure: no I/O, never raises.
"""

from __future__ import annotations

from relay import replies
from relay.replies import Reply

_WHY: dict[Reply, str] = {
    replies.RELAY_DENIED: "the client is no connected server and the recipient's domain "
    "is no connected domain (no open relay)",
    replies.SENDER_DENIED: "the sender's domain is not a domain of the client's connection",
    replies.SUSPENDED: "the client's connection is suspended",
    replies.THROTTLED: "the anomaly detector throttles the client's connection, which is "
    "over its cap now",
    replies.QUEUE_BACKLOG: "the queue is over [smtp] max_queue_backlog",
    replies.REGISTRY_UNAVAILABLE: "the registry's store is down longer than [store] max_stale",
    replies.NO_LOCAL_MAILBOX: "the gateway's own domain has no mailboxes",
    replies.POSTMASTER_UNROUTED: "the gateway's postmaster has no next hop in [delivery] routes",
    replies.TOO_MANY_RECIPIENTS: "over [smtp] max_recipients",
    replies.COMPLAINT_ALONE: "the feedback address takes a transaction of its own",
    replies.SPOOL_FULL: "the spool is full",
    replies.NO_MEMORY: "the text of the messages in progress fills [smtp] data_memory",
    replies.INTERNAL_ERROR: "an internal error (an ERROR line names it)",
    replies.MESSAGE_TOO_BIG: "over [smtp] max_message_size",
    replies.HEADER_TOO_BIG: "the header section is over [smtp] max_header_size",
    replies.BAD_LINE_ENDINGS: "bare CR, bare LF or NUL in the text",
    replies.SPF_REJECT: "inbound SPF check failed",
    replies.DMARC_REJECT: "the sender domain's DMARC policy rejects it",
    replies.SEVERAL_AUTHORS: "From: does not name exactly one author",
    replies.NO_VALID_RCPTS: "DATA with every recipient refused",
}


def why(reply: Reply) -> str:
    """What `reply` refuses and by which rule; its own text for a reply not listed."""
    found = _WHY.get(reply)
    if found is not None:
        return found
    if (reply.code, reply.status) == (552, "5.3.4"):
        return "over [smtp] max_message_size"  # size_exceeded(limit): SIZE= over the limit
    return reply.text
