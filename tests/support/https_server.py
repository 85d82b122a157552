"""A minimal HTTPS server for tests: one canned answer to every GET, over real TLS.

`await HttpsServer.start(host, port, context)` listens on loopback with an
`ssl.SSLContext` (e.g. `tests.support.tls_cert.server_context` of a
certificate from `TestCa` for "mta-sts.example.org"); port 0 takes a free
one (see `.port`). Each connection gets one HTTP/1.1 answer and is closed:
`status`, `content_type`, `body` and extra `headers` (e.g. a Location) can
be changed between requests; `requests` records (path, Host header) of each.
`policy_host(host, context)` starts one on port 443 of a loopback address, where
a sender looks for an MTA-STS policy, and skips the test when that port cannot
be bound (only root may; it fails the test instead under UGEM_TEST_REQUIRE_PEERS=1,
see tests.support.peers). Nothing here is an HTTP implementation beyond what a
policy fetch needs: no keep-alive, no request bodies, no chunked encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from http import HTTPStatus

from tests.support.peers import missing

HTTPS_PORT = 443
READ_TIMEOUT = 10.0  # seconds a client may take to send its request head
MAX_HEAD = 16 * 1024


class HttpsServer:
    def __init__(self) -> None:
        self.host = ""
        self.port = 0
        self.status = 200
        self.content_type = "text/plain"
        self.body = b""
        self.headers: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(cls, host: str, port: int, context: ssl.SSLContext) -> HttpsServer:
        server = cls()
        server._server = await asyncio.start_server(server._serve, host, port, ssl=context)
        server.host, server.port = server._server.sockets[0].getsockname()[:2]
        return server

    def serve(self, body: str | bytes, content_type: str = "text/plain", status: int = 200) -> None:
        """Answer every following request with this."""
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.status = status

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            self.requests.append(_request(head[:MAX_HEAD]))
            writer.write(self._answer())
            await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away or failed the handshake (an untrusted certificate)
        except TimeoutError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    def _answer(self) -> bytes:
        reason = HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Length: {len(self.body)}"]
        if self.content_type:
            lines.append(f"Content-Type: {self.content_type}")
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _request(head: bytes) -> tuple[str, str]:
    """(path, Host header) of a request head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    path = parts[1] if len(parts) > 1 else ""
    host = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            host = value.strip()
    return path, host


async def policy_host(host: str, context: ssl.SSLContext) -> HttpsServer:
    """An HttpsServer on host:443, where MTA-STS looks for a policy; the test is skipped
    (failed under the peers switch) when the port cannot be bound (it takes root; CI runs
    as root)."""
    try:
        return await HttpsServer.start(host, HTTPS_PORT, context)
    except PermissionError:
        missing(f"binding {host}:{HTTPS_PORT} for an MTA-STS policy host needs root")
