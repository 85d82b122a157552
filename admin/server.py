"""The admin HTTP listener: a FastAPI app on uvicorn, inside the relay's event loop.

`create_app` mounts the documentation pages with their assets (`admin.docs`),
the health endpoints and, given the services, the /v1/ API (`admin.api`) with
its error mapping and its errors in the schema (`admin.errors`) and the web
console at /ui/ (`admin.ui.app`, signed in with the same tokens); in front of it
the token check that needs no body (`admin.auth.AuthGate`) and, in front of
everything, the cap on request bodies (`admin.body_limit`,
`[admin] max_body_size`; the import of another node's queued mail takes up to a
whole message, `admin.queue_import.body_limit`). `AdminServer.start()` binds the socket itself
(raising `UgemError` naming the address if it cannot: uvicorn would call
sys.exit) and serves as a task of the running loop, on uvicorn's h11
protocol with the deadlines for a request's head and body and the cap on
connections of `[admin]` (`admin.http_protocol`); `stop()` ends it. uvicorn's
own signal handling is switched off: the node owns SIGTERM/SIGINT and stops
every part in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from admin import docs, errors, queue_import
from admin.api import V1, OperatorServices, api_routers
from admin.auth import AuthGate
from admin.body_limit import BodyLimit
from admin.health import HealthSource, health_router
from admin.http_protocol import guarded_protocol
from admin.ui.app import MOUNT, console_app
from ugem.core import times
from ugem.core.config import AdminConfig, parse_hostport
from ugem.core.errors import UgemError
from ugem.core.metrics import Metrics
from ugem.core.paging import DEFAULT_LIMIT, MAX_LIMIT

TITLE = "UGEM admin API"
DESCRIPTION = f"""The operators' API of a UGEM node, under `/v1/`; `/healthz`, `/readyz` and
`/metrics` beside it.

- **Tokens**: every /v1/ call takes `Authorization: Bearer <token>` (`ugem token create`);
  a role (viewer < operator < admin) allows what its operations say.
- **Errors** are RFC 9457 `application/problem+json` (`Problem`): `type`, `title`,
  `status`, `detail`; a 400 or 422 adds `errors`, one per field (`loc`, `pointer`,
  `detail`). Each operation lists only the errors it can answer.
- **Lists** are pages: `?limit=` (1 to {MAX_LIMIT}, {DEFAULT_LIMIT} by default) and
  `?cursor=` (a page's `next_cursor`, opaque); the answer is
  `{{"items": [...], "total": N, "next_cursor": "..." or null}}`. The order is stable and
  the cursor is the last item's place in it (keyset), so items added while paging
  never repeat or push another out of the next page.
- **Times** are {times.WRITTEN}; dates that are days (a decision's due date) are
  Asia/Almaty dates, `YYYY-MM-DD`. A time given is read as {times.READ}.
"""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the node handles signals


def create_app(
    source: HealthSource,
    metrics: Metrics,
    services: OperatorServices | None = None,
    settings: AdminConfig | None = None,
) -> FastAPI:
    settings = settings or AdminConfig()
    app = FastAPI(title=TITLE, version="1", description=DESCRIPTION, docs_url=None, redoc_url=None)
    docs.install(app, TITLE)
    app.include_router(health_router(source, metrics))
    errors.install(app)
    wider: dict[str, int] = {}
    if services is not None:
        for router in api_routers(services):
            app.include_router(router, prefix=V1)
        app.mount(MOUNT, console_app(services, settings))  # the web console, /ui/
        app.add_middleware(AuthGate, tokens=services.tokens)
        if services.transfer is not None:
            most = queue_import.body_limit(services.transfer)
            wider[queue_import.PATH] = max(most, settings.max_body_size)
    app.add_middleware(BodyLimit, max_body_size=settings.max_body_size, wider=wider)  # outermost
    return app


def _bind(listen: str) -> socket.socket:
    host, port = parse_hostport(listen, listen=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UgemError(f"admin listener {listen}: cannot listen: {exc.strerror}") from exc
    return sock


class AdminServer:
    def __init__(self, listen: str, app: FastAPI, settings: AdminConfig | None = None) -> None:
        settings = settings or AdminConfig()
        host, port = parse_hostport(listen, listen=True)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="none",
            http=guarded_protocol(settings),
            ws="none",
            timeout_keep_alive=math.ceil(settings.header_timeout),  # ours closes first
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.listen = listen

    async def start(self) -> None:
        sock = _bind(self.listen)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="admin-http")
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise UgemError(f"admin listener {self.listen} could not start: {exc}")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        servers = self._server.servers
        sock = servers[0].sockets[0] if servers and servers[0].sockets else None
        return int(sock.getsockname()[1]) if sock else 0

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
