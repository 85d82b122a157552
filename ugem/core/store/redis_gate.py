"""One Redis client's calls and its close: nothing reaches Redis through a closed client.

redis-py connects on demand: a command sent through a client after its `aclose()`
opens a new connection that nothing closes any more (the collector finds its socket
later and says "unclosed socket", a ResourceWarning). A `RedisGate` owns a client
(`client`, to build commands, pipelines and scripts on) and stands in every call:

- `run(call, what)` makes one call of the client (`call()`, e.g. `lambda:
  client.get(key)`, or a pipeline's `execute`) and awaits it, counted while it
  is under way; a Redis error is raised as `StoreError` naming the gate and
  `what` (the operation); a cancellation passes through.
- Once `close()` has begun, `run` refuses every call with `StoreError` ("... is
  closed") without making it (no coroutine is left unawaited), so no connection
  is opened again.
- `prepare` (optional) is awaited once before the first call goes out (calls that
  arrive meanwhile wait for it): the store's move off its old key prefix,
  `ugem.core.store.redis_keys`. When it fails, the call fails as its own would
  (StoreError) and the next call tries it again.
- `close()` waits for the calls under way (each is bounded by the client's
  timeouts), then closes the client and its connections; even when cancelled
  meanwhile it closes them. A second `close()` does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ugem.core.errors import StoreError

T = TypeVar("T")


class RedisGate:
    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        prepare: Callable[[aioredis.Redis], Awaitable[object]] | None = None,
    ) -> None:
        self.client = client
        self.name = name  # e.g. "redis store redis://host:port/0", without a password
        self.closed = False
        self._prepare = prepare  # None once it has run
        self._preparing = asyncio.Lock()
        self._under_way = 0
        self._idle: asyncio.Event | None = None  # made by a close that waits for calls

    async def run(self, call: Callable[[], Awaitable[T]], what: str = "") -> T:
        """Make `call()` and await it; StoreError for a Redis error, or once closed."""
        where = f"{self.name}: {what}" if what else self.name
        if self.closed:
            raise StoreError(f"{where}: the client is closed; no call after close()")
        self._under_way += 1
        try:
            if self._prepare is not None:
                await self._prepared()
            return await call()
        except RedisError as exc:
            raise StoreError(f"{where}: {exc}") from exc
        finally:
            self._under_way -= 1
            if self._under_way == 0 and self._idle is not None:
                self._idle.set()

    async def _prepared(self) -> None:
        async with self._preparing:
            if self._prepare is not None:
                await self._prepare(self.client)
                self._prepare = None

    async def close(self) -> None:
        """Refuse new calls, wait for those under way, close the client (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._under_way:
                self._idle = asyncio.Event()
                await self._idle.wait()
        finally:
            try:
                await self.client.aclose()
            except RedisError as exc:
                raise StoreError(f"{self.name}: close: {exc}") from exc
