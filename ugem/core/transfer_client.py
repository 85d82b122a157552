"""The wire of a drain: one queued message to another node's admin API.

`HttpReceiver(to, token, source)` hands each message to `POST /v1/queue/import`
of the node at `to` (its admin listener as host:port, or an http:// or
https:// URL), authenticated by a token of that node with the admin role, as
JSON: every field of `ugem.core.services.mailqueue.MailItem` (envelope,
schedule, hold, history) with the text in base64, and `source`, the name of
the sending node (for the receiver's audit log). The receiver answers 201
only once the message is durable in its spool, 200 `{"result": "already"}`
when it has (or had) that queue id: `hand` gives True and False for them.

How it fails: every other outcome is a `TransferError` naming the receiver
and what it said, with its scope: a 413 or 422 refuses this message
(`MESSAGE`: too large, a bad envelope); a 5xx, a timeout or a connection
that cannot be made or is cut (`httpx.HTTPError`) is `UNREACHABLE` (worth a
retry: the receiver may have committed the message, and then answers
"already"); any other answer (401, 403, 404, 409: a bad token, a node
without the endpoint, a receiver that is draining itself) is `RECEIVER`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any

import httpx

from ugem.core.config import parse_hostport
from ugem.core.errors import TransferError, UsageError
from ugem.core.services.mailqueue import MailItem

IMPORT_PATH = "/v1/queue/import"
TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # a large message over a slow link, not a hang
DETAIL = 300  # characters of the receiver's answer quoted
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")


def base_url(to: str) -> str:
    """The receiver's admin URL from `to` (host:port or an http(s) URL); UsageError if bad."""
    if "://" in to:
        try:
            url = httpx.URL(to)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"to: {to!r} is not valid; expected host:port or an http(s) URL")
        return str(url).rstrip("/")
    try:
        host, port = parse_hostport(to)
        if ":" in host:
            return f"http://[{ipaddress.IPv6Address(host)}]:{port}"
    except ValueError as exc:
        raise UsageError(f"to: {to!r} is not valid; expected host:port ({exc})") from None
    if not _HOST.fullmatch(host):
        raise UsageError(f"to: {to!r} is not valid; expected host:port (a name or an address)")
    return f"http://{host}:{port}"


def wire_form(item: MailItem, source: str) -> dict[str, Any]:
    """`item` as the import endpoint takes it: its fields, the text in base64, `source`."""
    fields = {k: v for k, v in vars(item).items() if k != "text"}
    fields["rcpts"], fields["original_rcpts"] = list(item.rcpts), list(item.original_rcpts)
    text = base64.b64encode(item.text or b"").decode("ascii")
    return fields | {"text": text, "source": source}


class HttpReceiver:
    """Another node's admin API as a drain's receiver (`ugem.core.services.drain.Receiver`)."""

    def __init__(
        self,
        to: str,
        token: str,
        source: str,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: an app in-process
    ) -> None:
        self.to = to
        self.source = source
        headers = {"Authorization": f"Bearer {token}"}
        self._client = httpx.AsyncClient(
            base_url=base_url(to), headers=headers, timeout=timeout, transport=transport
        )

    async def hand(self, item: MailItem) -> bool:
        """True when the receiver made `item` durable now, False when it had it already."""
        try:
            answer = await self._client.post(IMPORT_PATH, json=wire_form(item, self.source))
        except httpx.HTTPError as exc:
            reason = f"{self.to} not reached: {type(exc).__name__} {exc}".rstrip()
            raise TransferError(TransferError.UNREACHABLE, reason) from exc
        if answer.status_code == 201:
            return True
        if answer.status_code == 200 and _field(answer, "result") == "already":
            return False
        raise TransferError(_scope(answer.status_code), self._refusal(answer))

    def _refusal(self, answer: httpx.Response) -> str:
        detail = _field(answer, "detail")
        if isinstance(detail, list):  # FastAPI's 422: [{"loc": ..., "msg": ...}]
            detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))
        said = str(detail) if detail else answer.text
        return f"{self.to} answered {answer.status_code}: {said[:DETAIL]}"

    async def close(self) -> None:
        await self._client.aclose()


def _scope(status: int) -> str:
    if status in (413, 422):
        return TransferError.MESSAGE
    if status >= 500:
        return TransferError.UNREACHABLE
    return TransferError.RECEIVER


def _field(answer: httpx.Response, name: str) -> Any:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
