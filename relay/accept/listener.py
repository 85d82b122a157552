"""The SMTP listener: sessions on the main event loop, connection caps, graceful stop.

`AcceptServer` listens on `[smtp] listen` with `loop.create_server` (not
aiosmtpd's threaded Controller; the kernel's accept queue is `listen_backlog`,
not asyncio's 100, which left clients of a burst waiting for a banner) and
runs one `relay.accept.session.SmtpSession` per client. It counts sessions in
the server, not per session: over `max_connections` in total, or
`max_connections_per_ip` from one address, a client is greeted with 421 4.7.0
and closed. Connected servers (an address of a connection in state connected,
`Registry.by_address`: memory only, as the node syncs the registry every
second) keep `reserved_share` of `max_connections` for themselves: any other
client (a stranger) gets 421 4.7.0 once only that reserve is free, and at most
`max_connections_per_stranger` sessions from one address. So idle strangers
cannot lock the connected servers out. STARTTLS is offered when `tls_cert` and
`tls_key` are set (TLS >= 1.2, no renegotiation: `relay.tls`); a certificate
or key that cannot be loaded is a `ConfigError` at `start()`, an address it
cannot listen on (in use, not this host's) a `UgemError` naming the key. `reload_tls()`
(SIGHUP) reads both files again into a new context that every STARTTLS from
then on uses; open sessions are not touched, and a pair that cannot be loaded
keeps the old context, with an ERROR line naming the key. Mail from connected
servers is DKIM-signed by the `dkim` signer it is given, mail from the internet
checked by its `inbound` checks: the composition root (ugem.node) builds both
from the config, so this module builds no part of its own.
`stop(grace)` stops listening, sends 421 4.3.2 to sessions that are idle or
between commands, lets a DATA or commit in progress finish within `grace`
seconds, then aborts what is left and waits (again up to `grace`) for commits
already handed to the intake, so none is torn.
With several workers the supervisor binds the port once (`bind_listener`, no
SO_REUSEPORT) and every worker serves that one socket (`start(sock)`), as
Postfix's master hands its listening socket to each smtpd: a process that is
not one of the node's workers cannot bind the port (it gets "address in use").
`refuse(reply)` (a drain, ugem.draining) keeps listening but greets every new
session with that 421 and closes the open ones with it between commands (a
DATA in progress finishes and is committed); `refuse(None)` takes mail again;
`quiet()` says when no session is open and no commit in progress.

Every session's DATA in progress buffers its text within one
`relay.accept.memory_budget.MemoryBudget` of `[smtp] data_memory` bytes; a message
that finds none left is read to its end and refused with 452 4.3.1.

The mail itself goes to an `Intake` (the scheduler): `enqueue()` is durable on
return, `backlog()` is the number of messages waiting (backpressure at MAIL).
`throttle` is the node's board of the connections the anomaly detector
throttles (ugem.core.throttle), read at MAIL FROM; None: nothing is throttled.
Mail to `[reputation] fbl_address` goes to `complaints` (the node's complaint
service) and is never relayed; without `complaints` (or with the address
empty) that address is judged like any other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
from collections import Counter

from relay import replies
from relay.accept.address import PathLimits
from relay.accept.commands import Complaints, Inbound, Intake, SessionContext
from relay.accept.memory_budget import MemoryBudget
from relay.accept.policy import Gateway
from relay.accept.session import SmtpSession
from relay.deliver.dkim_sign import DkimSigner
from relay.replies import Reply
from relay.tls import server_context as load_tls
from ugem.core.clock import Clock
from ugem.core.config import Config, parse_hostport
from ugem.core.errors import ConfigError, UgemError
from ugem.core.events import EventBus
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.model import ConnState
from ugem.core.names import canonical_domain
from ugem.core.registry import Registry
from ugem.core.throttle import ThrottleView

__all__ = ["AcceptServer", "Intake", "bind_listener", "load_tls"]

log = logging.getLogger(__name__)


class AcceptServer:
    def __init__(
        self,
        config: Config,
        registry: Registry,
        intake: Intake,
        bus: EventBus,
        metrics: Metrics,
        clock: Clock,
        throttle: ThrottleView | None = None,
        *,
        dkim: DkimSigner | None = None,
        inbound: Inbound | None = None,
        complaints: Complaints | None = None,
    ) -> None:
        """`dkim` signs mail from connected servers, `inbound` checks mail from the
        internet (None: neither); the composition root builds both from the config.
        `complaints` keeps mail to `[reputation] fbl_address` (None: no such address)."""
        self.config = config
        hostname = config.hostname
        domain = gateway_domain(hostname)
        feedback = config.reputation.fbl_address if complaints is not None else ""
        routed = domain in config.delivery.routes
        gateway = Gateway(domain, postmaster_routed=routed, feedback=feedback)
        smtp = config.smtp
        self._services = SessionContext(
            config=config,
            registry=registry,
            intake=intake,
            bus=bus,
            metrics=metrics,
            clock=clock,
            hostname=hostname,
            gateway=gateway,
            limits=PathLimits(smtp.max_local_part, smtp.max_domain, gateway.domain),
            tls=None,
            dkim=dkim,
            inbound=inbound,
            throttle=throttle,
            complaints=complaints if feedback else None,
        )
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self._sessions: set[SmtpSession] = set()  # every open session, admitted or not
        self._admitted: set[SmtpSession] = set()
        self._per_ip: Counter[str] = Counter()
        # Sessions other clients may fill: the rest is kept for connected servers.
        reserved = int(smtp.max_connections * smtp.reserved_share)  # share <= 0.9: one is left
        self._stranger_slots = smtp.max_connections - reserved
        self._commits: set[asyncio.Task[None]] = set()
        self._budget = MemoryBudget(smtp.data_memory)
        self._stopping = False
        self._refusal: Reply | None = None  # every new session's greeting while set (drain)
        self.port = 0

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on `[smtp] listen`, or serve `sock` (bound by the supervisor) if given."""
        tls = load_tls(self.config.smtp.tls_cert, self.config.smtp.tls_key)
        self._services = dataclasses.replace(self._services, tls=tls)
        loop = asyncio.get_running_loop()
        if sock is None:
            sock = bind_listener(self.config.smtp.listen, self.config.smtp.listen_backlog)
        self._server = await loop.create_server(
            lambda: SmtpSession(self._services, self),
            sock=sock,
            backlog=self.config.smtp.listen_backlog,
        )
        host, self.port = sock.getsockname()[:2]
        event(
            log, "smtp_listening", logging.INFO, host=host, port=self.port, starttls=tls is not None
        )

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.shut_down()
        await self._wait_sessions(grace)
        if self._commits:
            _, pending = await asyncio.wait(set(self._commits), timeout=grace)
            if pending:
                event(log, "smtp_stop_commits_pending", logging.WARNING, count=len(pending))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _wait_sessions(self, grace: float) -> None:
        tasks = {t for s in self._sessions if (t := s.task) is not None and not t.done()}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            if late:
                for session in list(self._sessions):
                    session.abort()
                await asyncio.gather(*late, return_exceptions=True)

    def session_count(self) -> int:
        return len(self._admitted)

    def refuse(self, reply: Reply | None) -> None:
        """Greet new sessions with `reply` (a 421) and close the open ones with it between
        commands, while it is set; None: take mail again."""
        self._refusal = reply
        if reply is not None:
            for session in list(self._sessions):
                session.shut_down(reply)

    def quiet(self) -> bool:
        """No session open and no commit in progress."""
        return not self._sessions and not self._commits

    def reconfigure(self, config: Config, inbound: Inbound | None) -> None:
        """Sessions from now on follow `config`'s [smtp] limits and `inbound`'s checks (a
        reload, ugem.reload); open sessions keep what they started with. The listening
        socket and the DATA memory budget stay as they are; TLS is `reload_tls`'s."""
        smtp = config.smtp
        limits = PathLimits(smtp.max_local_part, smtp.max_domain, self._services.gateway.domain)
        self._services = dataclasses.replace(
            self._services, config=config, limits=limits, inbound=inbound
        )
        self.config = config
        reserved = int(smtp.max_connections * smtp.reserved_share)
        self._stranger_slots = smtp.max_connections - reserved

    def reload_tls(self) -> bool:
        """Load the STARTTLS certificate and key again; False (old context kept) on failure."""
        if self._services.tls is None:
            event(log, "tls_reload_skipped", logging.INFO, reason="STARTTLS is not configured")
            return False
        smtp = self.config.smtp
        try:
            tls = load_tls(smtp.tls_cert, smtp.tls_key)
        except ConfigError as exc:
            self.metrics.tls_reloads.labels("failed").inc()
            event(log, "tls_reload_failed", logging.ERROR, key=exc.key, error=str(exc))
            return False
        assert tls is not None  # both files are set, as they were at start
        self._services = dataclasses.replace(self._services, tls=tls)
        self.metrics.tls_reloads.labels("ok").inc()
        event(log, "tls_reloaded", logging.INFO, cert=smtp.tls_cert)
        return True

    # -- SessionHost: what sessions ask of the server --------------------------------------

    def admit(self, session: SmtpSession) -> Reply | None:
        """None if the session may go on; else the 421 to greet it with."""
        self._sessions.add(session)
        smtp = self.config.smtp
        if self._stopping:
            return replies.SHUTTING_DOWN
        if self._refusal is not None:
            return self._refusal
        server = self._is_connected_server(session.client_ip)
        slots = smtp.max_connections if server else self._stranger_slots
        if len(self._admitted) >= slots:
            return replies.TOO_MANY_CONNECTIONS
        per_ip = smtp.max_connections_per_ip
        if not server:
            per_ip = min(per_ip, smtp.max_connections_per_stranger)
        if self._per_ip[session.client_ip] >= per_ip:
            return replies.TOO_MANY_FROM_IP
        self._admitted.add(session)
        self._per_ip[session.client_ip] += 1
        self.metrics.smtp_connections.inc()
        self.metrics.smtp_connections_total.inc()
        return None

    def _is_connected_server(self, ip: str) -> bool:
        """Whether `ip` is a server of a connection in state connected (memory only, no I/O)."""
        conn = self._services.registry.by_address(ip)
        return conn is not None and conn.state == ConnState.CONNECTED

    def release(self, session: SmtpSession) -> None:
        self._sessions.discard(session)
        if session not in self._admitted:
            return
        self._admitted.discard(session)
        self._per_ip[session.client_ip] -= 1
        if self._per_ip[session.client_ip] <= 0:
            del self._per_ip[session.client_ip]
        self.metrics.smtp_connections.dec()

    @property
    def data_budget(self) -> MemoryBudget:
        """The memory budget of message text that every session's DATA shares."""
        return self._budget

    def tls_context(self) -> ssl.SSLContext | None:
        """The STARTTLS context now (the latest reload's)."""
        return self._services.tls

    def commit_started(self, task: asyncio.Task[None]) -> None:
        self._commits.add(task)
        task.add_done_callback(self._commit_done)

    def _commit_done(self, task: asyncio.Task[None]) -> None:
        self._commits.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the session logged it, or its client was gone


def gateway_domain(hostname: str) -> str:
    """The node's hostname as a domain: canonical when it is a valid one."""
    try:
        return canonical_domain(hostname)
    except ValueError:
        return hostname.strip().rstrip(".").lower()


def bind_listener(listen: str, backlog: int) -> socket.socket:
    """A listening TCP socket on `listen` (`[smtp] listen`): SO_REUSEADDR, never
    SO_REUSEPORT, so no other process can bind the port beside it. An address it cannot
    listen on (in use, not this host's) is a `UgemError` naming the key, in one line."""
    host, port = parse_hostport(listen, listen=True)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:  # the port is taken, the address is not this host's ...
        why = exc.strerror or str(exc)
        raise UgemError(f"smtp.listen {listen}: cannot listen: {why}") from exc
    sock.setblocking(False)
    return sock
