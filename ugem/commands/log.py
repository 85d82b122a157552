"""`ugem log search`: what became of a message, from the node's message index.

"Did the mail from X to Y on Tuesday leave, and where did it go?":
`ugem log search --from X --to Y --since 2026-01-06 --until 2026-01-06`
prints each message found, newest first, with its status and its whole
history (accepted, each attempt per recipient with the next hop, the reply
and the delays, held, released, deleted, expired; or its refusal at SMTP),
also long after it left the queue, whichever worker handled it. Filters:
`--queue-id`, `--message-id`, `--from`, `--to` (an address in any case, or
"@domain"), `--since`/`--until` (RFC 3339, Unix time or a date; Asia/Almaty
without a zone; a date as `--until` runs to that day's end); `--limit` per
page and `--cursor` for the next one (the last line names it). `--json`
prints the page as `GET /v1/messages` answers it. It calls
`ugem.core.services.messages.MessageService`, the API's logic; it reads the
index file (`[log] index_days`) beside a running node, changing nothing.
A bad option exits 2 naming it; the index turned off exits 1 saying so.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ugem.cli import add_json_flag, print_json
from ugem.commands.wiring import as_options
from ugem.core import times
from ugem.core.config import Config
from ugem.core.message_index import IndexedEvent
from ugem.core.paging import Page
from ugem.core.services.messages import (
    DEFAULT_LIMIT,
    MessageHistory,
    MessageQuery,
    MessageService,
    as_dict,
)

OPTIONS = {
    "queue_id": "--queue-id",
    "message_id": "--message-id",
    "sender": "--from",
    "rcpt": "--to",
    "since": "--since",
    "until": "--until",
    "limit": "--limit",
    "cursor": "--cursor",
}
OUTCOMES = ("delivered", "deferred", "bounced")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("log", parents=[common], help="the mail log: message histories")
    cmds = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    search = cmds.add_parser(
        "search", parents=[common], help="find messages and show what became of them"
    )
    search.add_argument("--queue-id", metavar="ID", help="the gateway's queue id")
    search.add_argument("--message-id", metavar="ID", help="the Message-ID header")
    search.add_argument("--from", dest="sender", metavar="ADDRESS", help="sender (or @domain)")
    search.add_argument("--to", dest="rcpt", metavar="ADDRESS", help="recipient (or @domain)")
    search.add_argument("--since", metavar="TIME", help="RFC 3339 or a date (Asia/Almaty)")
    search.add_argument("--until", metavar="TIME", help="RFC 3339 or a date (to its end)")
    per_page = f"messages a page (default {DEFAULT_LIMIT})"
    search.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=per_page)
    search.add_argument("--cursor", help="the next page, as the last page's last line names it")
    add_json_flag(search)
    search.set_defaults(handler=search_log)


def search_log(args: argparse.Namespace, config: Config) -> int:
    query = MessageQuery(
        args.queue_id,
        args.message_id,
        args.sender,
        args.rcpt,
        args.since,
        args.until,
        args.limit,
        args.cursor,
    )
    with as_options(OPTIONS):
        page = asyncio.run(MessageService.of(config).search(query))
    if args.json:
        items = [as_dict(h) for h in page.items]
        print_json({"items": items, "total": page.total, "next_cursor": page.next_cursor})
    else:
        _print_page(page)
    return 0


def _print_page(page: Page[MessageHistory]) -> None:
    if not page.items:
        print("no message found")
        return
    for history in page.items:
        _print_history(history)
        print()
    shown = f"{len(page.items)} of {page.total} messages"
    print(shown + (f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""))


def _print_history(history: MessageHistory) -> None:
    m = history.message
    rcpts = ", ".join(m.rcpts) or "-"
    print(f"{m.queue_id or '(no queue id)'}  {history.status}  <{m.sender}> -> {rcpts}")
    origin = f"{m.client_ip} ({m.connection or 'internet'})"
    print(f"  client {origin}" + (f"  message-id <{m.message_id}>" if m.message_id else ""))
    for ev in m.events:
        print(f"  {times.rfc3339(ev.ts)}  {ev.event:<9}  {describe(ev)}")


def describe(ev: IndexedEvent) -> str:
    """One event's mail log fields, as a line for a person."""
    f: dict[str, Any] = ev.fields
    if ev.event == "accepted":
        tls = "yes" if f.get("tls") else "no"
        return f"{f.get('size')} bytes, {f.get('rcpts')} rcpts, TLS {tls}, HELO {f.get('helo')}"
    if ev.event in OUTCOMES:
        reply = f"{f.get('code')} {f.get('status')} {f.get('text')}"
        delays = (
            f"attempt {f.get('attempt')}; delay {f.get('delay')} s, "
            f"connect {f.get('connect')} s, transfer {f.get('transfer')} s"
        )
        return f"{f.get('rcpt')} via {f.get('hop') or '-'}: {reply} ({delays})"
    if ev.event == "refused":
        reply = f"{f.get('code')} {f.get('status')} {f.get('text')}"
        return f"{f.get('command')} from {f.get('client_ip')}: {reply} ({f.get('why')})"
    said = f"by {f.get('actor')}: {f.get('reason') or '-'}"
    if not f.get("queue_id"):
        said += f" ({f.get('count')} messages of {f.get('connection')} at once)"
    return said
