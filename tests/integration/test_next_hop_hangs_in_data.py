"""Scenario: a next hop that hangs in the middle of DATA.

The hop for example.org greets, answers EHLO, MAIL, RCPT and 354 to DATA, and
then, in its first session, hangs: either it reads the whole text and never
answers the end of data (`silent`), or it stops reading after its 354 while the
node still has megabytes of text to write (`stalled`, so the node's socket
buffers fill and its writes wait). From its second session on it behaves.
example.net goes to a healthy sink.

While the first session hangs, the node does not stall: mail to example.net is
delivered and a new client gets the banner at once. After `[delivery]
command_timeout` (which bounds the reply to the end of DATA, relay.deliver.transaction)
the node gives up: the message is deferred (not earlier than the timeout) and
the node lets go of the hung connection (its socket is closed, checked in
/proc). After the back-off the message is sent again and arrives exactly once
(the hung session's copy was never acknowledged, so it does not count).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.gateway import parse_queue_gauge
from tests.support.clients import message, smtplib_send
from tests.support.node import NodeProcess, node_relaying_to, smtp_address
from tests.support.sink import Sink
from tests.support.waiting import eventually

COMMAND_TIMEOUT = 5.0  # [delivery] command_timeout: how long the node waits for a reply
STALLED_SIZE = 8 * 1024 * 1024  # more than the kernel's socket buffers hold (wmem max 4 MiB)
TERMINATOR = b"\r\n.\r\n"


class HopSession(asyncio.Protocol):
    """One SMTP session at the hanging hop: answers commands, hangs its DATA if told to."""

    def __init__(self, hop: HangingHop) -> None:
        self.hop = hop
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.in_data = False
        self.hang = False
        self.closed = False
        self.dead = False
        self.node_port = 0  # the node's end of this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.node_port = int(transport.get_extra_info("peername")[1])
        self.hop.sessions.append(self)
        transport.write(b"220 hop.test ESMTP\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.hop.changed()

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if self.in_data:
                end = (b"\r\n" + self.buffer).find(TERMINATOR)
                if end < 0:
                    if self.hang:  # silent: the text is read and dropped, the reply never comes
                        self.buffer = self.buffer[-len(TERMINATOR) :]
                    return
                text, self.buffer = self.buffer[:end], self.buffer[end + len(TERMINATOR) - 2 :]
                self.in_data = False
                if self.hang:  # no reply, and none to anything after it
                    self.dead = True
                    self.hop.hung_at = time.monotonic()
                    self.hop.changed()
                    return
                self.hop.delivered.append(text.replace(b"\r\n..", b"\r\n."))
                self.hop.changed()
                self.transport.write(b"250 2.0.0 Ok\r\n")
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            self.command(line.decode("ascii", "replace").upper())

    def command(self, line: str) -> None:
        assert self.transport is not None
        verb = line.split(" ", 1)[0]
        if verb == "EHLO":
            self.transport.write(b"250-hop.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP", "HELO"):
            self.transport.write(b"250 2.0.0 Ok\r\n")
        elif verb == "DATA":
            self.transport.write(b"354 Go ahead\r\n")
            self.in_data = True
            self.hang = self.hop.hangs_left > 0
            if self.hang:
                self.hop.hangs_left -= 1
                if self.hop.mode == "stalled":
                    self.transport.pause_reading()  # the node's writes fill the buffers
                    self.hop.hung_at = time.monotonic()
                    self.hop.changed()
        elif verb == "QUIT":
            self.transport.write(b"221 2.0.0 Bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"500 5.5.1 Unknown\r\n")


class HangingHop:
    """A next hop on 127.0.0.1 whose first DATA hangs (`mode` silent or stalled)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.hangs_left = 1
        self.sessions: list[HopSession] = []
        self.delivered: list[bytes] = []
        self.hung_at: float | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._event = asyncio.Event()

    async def start(self) -> None:
        sock = socket.socket()
        # A small receive buffer (inherited by accepted sockets) keeps the kernel from
        # absorbing the whole text when the hop stops reading.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HopSession(self), sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in self.sessions:
                if session.transport is not None:
                    session.transport.abort()
            await self._server.wait_closed()

    def changed(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            try:
                await asyncio.wait_for(self._event.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                if condition():
                    return
                raise AssertionError(f"hanging hop: {what} did not happen in {timeout} s") from None


def node_holds(pid: int, local_port: int, remote_port: int) -> bool:
    """Whether process `pid` has a TCP socket open from `local_port` to `remote_port` (Linux)."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/net/{table}") as rows:
            for row in list(rows)[1:]:
                cols = row.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                ports = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
                if ports == (local_port, remote_port) and inode in inodes:
                    return True
    return False


def metric(node: NodeProcess, name: str, by: str) -> dict[str, float]:
    """{label `by`'s value: sample, summed over the other labels} of one metric family."""
    url = f"http://{node.config.admin.listen}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        page = resp.read().decode()
    if name == "ugem_queue_messages":
        return {k: float(v) for k, v in parse_queue_gauge(page).items()}
    out: dict[str, float] = {}
    for row in page.splitlines():
        if row.startswith(name + "{"):
            labels, value = row.rsplit(" ", 1)
            key = dict(re.findall(r'(\w+)="([^"]*)"', labels))[by]
            out[key] = out.get(key, 0.0) + float(value)
    return out


def deferrals(node: NodeProcess) -> float:
    return metric(node, "ugem_recipients_total", "outcome").get("deferred", 0.0)


async def banner_within(host: str, port: int, seconds: float) -> bytes:
    async def greet() -> bytes:
        reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
        try:
            return await reader.readline()
        finally:
            writer.close()

    return await asyncio.wait_for(greet(), seconds)


async def send(node: NodeProcess, rcpt: str, subject: str, body: str = "Hello.\r\n") -> None:
    host, port = smtp_address(node.config)
    data = message("a@mdai.gov.kz", rcpt, subject, body)
    sent = await asyncio.to_thread(
        smtplib_send, host, port, "a@mdai.gov.kz", [rcpt], data, "127.0.0.2"
    )
    assert sent.ok, sent


@pytest.mark.parametrize("mode", ["silent", "stalled"])
async def test_a_hop_hanging_in_data_stalls_nothing_and_gets_the_mail_once(
    tmp_path: Path, mode: str
) -> None:
    healthy = await Sink.start("127.0.0.1", 0)
    hop = HangingHop(mode)
    await hop.start()
    routes = {"example.org": f"127.0.0.1:{hop.port}", "example.net": f"127.0.0.1:{healthy.port}"}
    config, path = await node_relaying_to(
        tmp_path,
        healthy,
        delivery={
            "routes": routes,
            "command_timeout": COMMAND_TIMEOUT,
            "min_backoff": 1.0,
            "max_backoff": 2.0,
        },
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        assert node.proc is not None
        pid = node.proc.pid
        host, port = smtp_address(config)
        body = "Hello.\r\n" if mode == "silent" else ("x" * 78 + "\r\n") * (STALLED_SIZE // 80)
        await send(node, "x@example.org", "hung", body)
        await hop.wait_until(lambda: hop.hung_at is not None, 20, "the hang")
        assert hop.hung_at is not None
        hung = hop.sessions[0]

        # Meanwhile: other mail leaves, new clients are served, the hung session is held.
        await send(node, "y@example.net", "healthy")
        await healthy.wait_for(1, timeout=COMMAND_TIMEOUT - 2)
        assert (await banner_within(host, port, 1.0)).startswith(b"220 ")
        assert deferrals(node) == 0 and not hung.closed, "the node gave up before its timeout"

        # The node gives up after command_timeout and lets go of the connection.
        await eventually(lambda: deferrals(node) >= 1, COMMAND_TIMEOUT + 15, "a deferral")
        assert time.monotonic() - hop.hung_at >= COMMAND_TIMEOUT - 0.5
        await eventually(
            lambda: not node_holds(pid, hung.node_port, hop.port),
            10,
            f"the node closing its hung connection (local port {hung.node_port})",
        )

        # The retry, after the back-off, is acknowledged: exactly one copy counts.
        await hop.wait_until(lambda: len(hop.delivered) >= 1, 30, "the retried delivery")
        await eventually(
            lambda: sum(metric(node, "ugem_queue_messages", "state").values()) == 0,
            30,
            "an empty queue",
        )
        assert len(hop.delivered) == 1
        assert b"Subject: hung" in hop.delivered[0]
        assert len(healthy.messages) == 1
        assert "Traceback" not in node.output()
    finally:
        node.kill()
        await hop.stop()
        await healthy.stop()
