"""Every SMTP reply the relay sends, as named constants shared by code and tests.

A `Reply` is code, enhanced status code and text; `str(reply)` is the line on
the wire (without CRLF). Tests compare against these constants, never against
literal strings, so a reworded reply cannot silently break a test's meaning.
Replies whose text carries a value (queue id, size) are functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return (
            f"{self.code} {self.status} {self.text}" if self.status else f"{self.code} {self.text}"
        )

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.status, text)

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500


# 2xx / 3xx
OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Sender ok")
RCPT_OK = Reply(250, "2.1.5", "Recipient ok")
RESET_OK = Reply(250, "2.0.0", "Reset state")
NOOP_OK = Reply(250, "2.0.0", "Ok")
BYE = Reply(221, "2.0.0", "Bye")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")
VRFY_NO = Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


# 4xx: the client keeps the mail and tries again
SUSPENDED = Reply(
    451,
    "4.7.1",
    "Mail server suspended by the UGEM operator; your mail is "
    "kept for retry; contact the STS support service",
)
THROTTLED = Reply(
    451,
    "4.7.1",
    "Your server is sending far more mail than usual; mail over your usual rate "
    "is deferred for now, retry later",
)
INTERNAL_ERROR = Reply(451, "4.3.0", "Internal error; try again later")
# The registry's store has been down longer than [store] max_stale: the copy is too old
# to relay on (ugem.core.registry_watch), so mail waits, as it would on any internal error.
REGISTRY_UNAVAILABLE = Reply(451, "4.3.0", "Registry unavailable; try again later")
QUEUE_BACKLOG = Reply(451, "4.3.2", "System busy; try again later")
SPOOL_FULL = Reply(452, "4.3.1", "Insufficient system storage")
NO_MEMORY = Reply(452, "4.3.1", "Insufficient system resources for the message, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections; try again later")
TOO_MANY_FROM_IP = Reply(421, "4.7.0", "Too many connections from your address; try again later")
TIMEOUT = Reply(421, "4.4.2", "Timeout; closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down; try again later")
TOO_MANY_BAD = Reply(421, "4.7.0", "Too many errors; closing connection")
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available")

# 5xx: permanent
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
SENDER_DENIED = Reply(550, "5.7.1", "Sender address is not in a domain of your connection")
BAD_LINE_ENDINGS = Reply(
    550, "5.6.0", "Message contains bare CR or LF, or NUL; lines must end with CRLF"
)
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message too big")
HEADER_TOO_BIG = Reply(552, "5.3.4", "Message header section too big")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
COMMAND_TOO_LONG = Reply(500, "5.5.2", "Command line too long")
BAD_COMMAND_CHARS = Reply(500, "5.5.2", "Command contains bare CR, bare LF or NUL")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
SYNTAX_ERROR = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RCPT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Send HELO/EHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
ALREADY_TLS = Reply(503, "5.5.1", "Already using TLS")
PARAM_UNKNOWN = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameter not recognized")
LOCAL_PART_TOO_LONG = Reply(501, "5.1.3", "Local part too long")
DOMAIN_TOO_LONG = Reply(501, "5.1.3", "Domain too long")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
DMARC_REJECT = Reply(550, "5.7.1", "Rejected by the sender domain's DMARC policy")


def size_exceeded(limit: int) -> Reply:
    return Reply(552, "5.3.4", f"Message size exceeds fixed maximum of {limit} bytes")


# Added for accept/address/policy (additive). Replies without an enhanced status code are
# the ones RFC 2034 exempts: the greeting and the HELO/EHLO answers.
def greeting(hostname: str) -> Reply:
    return Reply(220, "", f"{hostname} ESMTP UGEM")


def helo_ok(hostname: str) -> Reply:
    return Reply(250, "", hostname)


HELP = Reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS")
TOO_MANY_NOOPS = Reply(
    421,
    "4.7.0",
    "Too many NOOP, RSET, VRFY, HELP or repeated HELO/EHLO commands; closing connection",
)
NO_VALID_RCPTS = Reply(554, "5.5.1", "No valid recipients")
PARAM_VALUE_BAD = Reply(
    501,
    "5.5.4",
    "Bad ESMTP parameter value: SIZE takes ASCII digits, BODY takes "
    "7BIT or 8BITMIME, SMTPUTF8 takes no value",
)
ROUTING_TRICK = Reply(
    550,
    "5.7.1",
    "Percent hack, bang path or quoted @ in the local part is "
    "not accepted; address the real domain as user@domain",
)
ADDRESS_LITERAL = Reply(
    550, "5.7.1", "Address literals like user@[1.2.3.4] are not accepted; use a domain name"
)
NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter on MAIL")
NO_LOCAL_MAILBOX = Reply(550, "5.1.1", "This gateway has no local mailboxes")
POSTMASTER_UNROUTED = Reply(
    550,
    "5.1.1",
    "The gateway's postmaster has no next hop configured; contact the STS support service",
)

# Added for inbound authentication (relay.inbound.checks; additive).
SPF_REJECT = Reply(
    550, "5.7.23", "SPF validation failed: the sender domain does not authorise this host"
)
SEVERAL_AUTHORS = Reply(
    550,
    "5.7.1",
    "Message must have exactly one From: header field with one address "
    "(RFC 5322 3.6, RFC 7489 6.6.1)",
)

# Added for the session limits of issue 10 (additive).
TOO_MANY_RCPT_DENIALS = Reply(421, "4.7.0", "Too many refused recipients; closing connection")
IDLE_SESSION = Reply(421, "4.4.2", "Too long without a message; closing connection")

# Added for feedback-loop complaints (issue 13, item 3; additive): mail to `[reputation]
# fbl_address` is kept as a complaint, never relayed, in a transaction of its own.
COMPLAINT_ALONE = Reply(
    452,
    "4.5.3",
    "The feedback address takes a transaction of its own; send the other recipients again "
    "in another",
)


def complaint_kept(number: int) -> Reply:
    return Reply(250, "2.0.0", f"Ok: complaint recorded as {number}")


# Added for draining a node into another (issue 14, item 4; additive): a node being drained
# greets new sessions with this and closes the others between commands.
DRAINING = Reply(
    421, "4.3.2", "This node is being drained and takes no mail; try another node of the gateway"
)
