"""The sink's control channel: a tiny HTTP/1.0 server on its own port, and its client.

Routes, each answered with JSON:

    GET  /stats    the sink's `Arrivals.stats()`
    POST /expect   body: the ids that were sent, one per line; sets them, answers the stats
    POST /reset    zeroes the counts and forgets the expected ids; answers the stats

Anything else gets 404 (unknown path) or 400 (a malformed request) with
{"error": "..."}. One request per connection; bodies up to 64 MiB.
`request(address, method, path, body)` is the blocking client (stdlib
http.client); it raises `TargetError` naming the address when the sink does
not answer or answers with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from typing import Any

from loadtest.errors import TargetError
from loadtest.sink import Arrivals

MAX_BODY = 64 * 1024 * 1024
HEADER_LIMIT = 100


class ControlServer:
    """Serves the control routes for one `Arrivals` on the running loop."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.server: asyncio.Server | None = None
        self.host = ""
        self.port = 0

    @classmethod
    async def start(cls, arrivals: Arrivals, host: str, port: int) -> ControlServer:
        control = cls(arrivals)
        control.server = await asyncio.start_server(control._serve, host, port)
        control.host, control.port = control.server.sockets[0].getsockname()[:2]
        return control

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, answer = await self._answer(reader)
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            status, answer = 400, {"error": f"bad request: {exc}"}
        body = json.dumps(answer).encode()
        writer.write(
            b"HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, b"OK" if status == 200 else b"Error", len(body))
            + body
        )
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        method, path, _ = (await reader.readuntil(b"\r\n")).decode("latin-1").split(" ", 2)
        length = 0
        for _ in range(HEADER_LIMIT):
            line = (await reader.readuntil(b"\r\n")).decode("latin-1")
            if line == "\r\n":
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"Content-Length {length} is over {MAX_BODY}")
        body = await reader.readexactly(length)
        return self._route(method, path, body)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if (method, path) == ("POST", "/expect"):
            self.arrivals.expect(
                line.strip() for line in body.decode().splitlines() if line.strip()
            )
        elif (method, path) == ("POST", "/reset"):
            self.arrivals.reset()
        elif (method, path) != ("GET", "/stats"):
            return 404, {
                "error": f"no route {method} {path}: GET /stats, POST /expect, POST /reset"
            }
        return 200, self.arrivals.stats()


def request(
    address: tuple[str, int], method: str, path: str, body: bytes = b"", timeout: float = 30.0
) -> dict[str, Any]:
    """One control request; the JSON answer. TargetError when it fails."""
    host, port = address
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TargetError(f"sink control {host}:{port} {method} {path}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise TargetError(f"sink control {host}:{port} {method} {path}: {answer.get('error')}")
    return dict(answer)
