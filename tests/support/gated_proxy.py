"""A TCP proxy on loopback whose answers can be slowed and held: cuts in a drain's hand-over.

`await GatedProxy.start(host, port, delay)` listens on 127.0.0.1 (a free
port: `.address`) and relays every connection to host:port. What the client
sends goes on at once; what comes back waits `delay` seconds a chunk, and
not at all while `hold()` is in force (`release()` lets it go). So a test can
let the receiver commit requests whose answers the sender never gets, then
kill either side in exactly that window. When the upstream side closes (the
receiver killed), the client's connection is aborted at once and what was
held is dropped, as a real cut would; when the client goes, the upstream
connection is closed. `await proxy.stop()` ends everything.
"""

from __future__ import annotations

import asyncio
import contextlib


class GatedProxy:
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.address = ""
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, host: str, port: int, delay: float = 0.0) -> GatedProxy:
        proxy = cls((host, port), delay)
        proxy._server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
        bound = proxy._server.sockets[0].getsockname()
        proxy.address = f"127.0.0.1:{bound[1]}"
        return proxy

    def hold(self) -> None:
        """Keep every answer from now on (the requests still go through)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._forward(reader, up_writer),
                self._back(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            up_writer.transport.abort()
            writer.transport.abort()
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """The client's requests, at once; the client gone, the upstream is closed."""
        while data := await reader.read(65536):
            up_writer.write(data)
            await up_writer.drain()
        up_writer.close()

    async def _back(self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The answers, delayed and held; the upstream gone, the client is cut off (what is
        held is dropped) or, when nothing is held, gets what is on its way first."""
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        async def send() -> None:
            while True:
                data = await chunks.get()
                try:
                    await asyncio.sleep(self.delay)
                    await self._open.wait()
                    writer.write(data)
                    await writer.drain()
                finally:
                    chunks.task_done()

        sender = asyncio.create_task(send())
        try:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    await chunks.put(data)
            if self._open.is_set():
                await chunks.join()
        finally:
            if not self._open.is_set():
                writer.transport.abort()  # the upstream died with answers held: a cut
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
