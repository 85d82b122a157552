"""Scenario: SIGKILL of either node in the middle of a drain; nothing lost, nothing twice.

Two real nodes; A holds N deferred messages; A's drain reaches B's admin API
through a proxy (`tests.support.gated_proxy`) that slows B's answers and, at
the chosen moment, holds them: B has then made messages durable whose
answers A never gets, so they are on both nodes, the one window where a
duplicate could be born.

- A killed there (its drain runs in A, started by `POST /v1/drain`): A comes
  back draining (421, `/readyz` 503), `ugem drain` again moves the rest and
  is told "already" for each message of the window, counted as such; B holds
  each message once.
- B killed there (the drain is `ugem drain` beside A): the drain stops (exit
  1), every message is on A or on B (B's spool read while B is dead); B
  restarted, the drain again is told "already" for the window's, and B holds
  each once.

Then the next hop accepts and every message is delivered exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.test_drain_moves_the_queue_to_another_node import LATER
from tests.integration.test_full_disk_never_duplicates import subjects
from tests.support.drain import (
    admin_token,
    greeting,
    queue_items,
    queued_ids,
    readyz,
    token_file,
    ugem_drain,
    wait_answering,
)
from tests.support.gated_proxy import GatedProxy
from tests.support.node import NodeProcess, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from ugem.core.config import Config, parse_hostport
from ugem.core.services.tokens import Role

N = 60
ANSWER_DELAY = 0.03  # seconds each of B's answers is slowed: the drain takes a while
DEFER = "451 4.2.0 Mailbox busy, try later"

pytestmark = pytest.mark.slow


@dataclass
class Pair:
    a: NodeProcess
    b: NodeProcess
    sink: Sink
    tmp: Path

    @property
    def a_config(self) -> Config:
        return self.a.config

    @property
    def b_config(self) -> Config:
        return self.b.config

    async def proxy(self) -> GatedProxy:
        host, port = parse_hostport(self.b_config.admin.listen)
        return await GatedProxy.start(host, port, ANSWER_DELAY)

    async def window(self, proxy: GatedProxy) -> int:
        """Once B holds a fifth of the mail, hold B's answers and wait until some message
        is on both nodes; how many are (read again after a kill: it may still grow)."""
        await eventually_read(lambda: queued_ids(self.b_config), lambda ids: len(ids) >= N // 5,
                              what="a fifth of the mail on B")  # fmt: skip
        proxy.hold()
        both = await eventually_read(self.overlap, lambda n: n >= 1, what="a message on both")
        return both

    async def overlap(self) -> int:
        return len(await queued_ids(self.a_config) & await queued_ids(self.b_config))

    async def everything_delivered_once(self) -> None:
        """The sink accepts; B (the drained mail, made due now) delivers each message once."""
        self.sink.rcpt_reply = None
        await retry_all(self.b_config)
        await self.sink.wait_until(lambda: len(subjects(self.sink)) == N, 30, "all delivered")
        await eventually_read(lambda: queue_items(self.b_config), lambda items: not items,
                              what="B's queue empty")  # fmt: skip
        assert subjects(self.sink) == {f"m{n}": 1 for n in range(N)}


async def retry_all(config: Config) -> None:
    headers = {"Authorization": f"Bearer {await admin_token(config, Role.OPERATOR, 'noc')}"}
    async with httpx.AsyncClient(base_url=f"http://{config.admin.listen}", headers=headers) as api:
        for item in await queue_items(config):
            done = await api.post(f"/v1/queue/{item.id}/retry", json={})
            assert done.status_code == 200, done.text


@pytest.fixture
async def pair(tmp_path: Path, sink: Sink) -> AsyncIterator[Pair]:
    sink.rcpt_reply = lambda rcpt: DEFER
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config, path = await node_relaying_to(tmp_path / name, sink, delivery=LATER)
        nodes.append(NodeProcess(path, config))
    a, b = nodes
    a.start()
    b.start()
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        for n in range(N):
            sent = await send_mail(a.config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2",
                                   f"m{n}")  # fmt: skip
            assert sent.code == 250, sent
        await eventually_read(lambda: queue_items(a.config),
                              lambda items: len(items) == N and all(m.attempts for m in items),
                              what="every message deferred on A")  # fmt: skip
        yield Pair(a, b, sink, tmp_path)
    finally:
        a.kill()
        b.kill()


async def test_a_killed_mid_drain_then_drained_again_moves_each_message_once(pair: Pair) -> None:
    proxy = await pair.proxy()
    try:
        secret = await admin_token(pair.b_config)
        a_admin = await admin_token(pair.a_config, Role.ADMIN, "noc-a")
        async with httpx.AsyncClient(base_url=f"http://{pair.a_config.admin.listen}") as api:
            started = await api.post(
                "/v1/drain",
                json={"to": proxy.address, "token": secret, "reason": "host maintenance"},
                headers={"Authorization": f"Bearer {a_admin}"},
            )
        assert started.status_code == 202, started.text
        await pair.window(proxy)
        pair.a.kill()  # SIGKILL, B's answers to the window's messages never heard
    finally:
        await proxy.stop()
    both = await pair.overlap()
    left_on_a = await queued_ids(pair.a_config)
    assert both >= 1 and len(left_on_a | await queued_ids(pair.b_config)) == N  # none lost

    pair.a.start()
    status, body = await wait_answering(pair.a)
    assert status == 503 and body["reason"].startswith(f"draining into {proxy.address}")
    assert (await greeting(pair.a_config))[0] == 421  # it came back out of service
    code, out, _ = await ugem_drain(pair.a.config_path or Path(), "--status", "--json")
    killed = json.loads(out)["report"]
    assert killed["state"] == "stopped" and killed["reason"].startswith("interrupted")
    token = token_file(pair.tmp, secret)
    code, out, err = await ugem_drain(pair.a.config_path or Path(), "--to",
                                      pair.b_config.admin.listen, "--token-file", str(token),
                                      "--json")  # fmt: skip
    assert code == 0, out + err
    report = json.loads(out)
    assert report["state"] == "done" and report["left"] == 0
    assert report["already"] == both  # the window's messages: counted, not queued twice
    assert report["moved"] + report["already"] == len(left_on_a)
    on_b = await queued_ids(pair.b_config)
    assert left_on_a <= on_b and len(on_b) == N
    await pair.everything_delivered_once()


async def test_b_killed_mid_drain_loses_nothing_and_the_drain_resumes(pair: Pair) -> None:
    proxy = await pair.proxy()
    secret = await admin_token(pair.b_config)
    token = token_file(pair.tmp, secret)
    a_path = pair.a.config_path or Path()
    try:
        drain = asyncio.create_task(
            ugem_drain(a_path, "--to", proxy.address, "--token-file", str(token), "--json")
        )
        await pair.window(proxy)
        pair.b.kill()  # SIGKILL with the window's answers held in the proxy
        code, out, err = await drain
    finally:
        await proxy.stop()
    assert code == 1, out + err
    report = json.loads(out)
    assert report["state"] == "stopped" and "not reached" in report["reason"], report
    on_a, on_b = await queued_ids(pair.a_config), await queued_ids(pair.b_config)  # B is dead
    both = len(on_a & on_b)
    assert both >= 1 and len(on_a | on_b) == N  # every message is somewhere: none lost
    status, body = await readyz(pair.a_config) or (0, {})
    assert status == 503 and body["reason"].startswith("draining into")

    pair.b.start()
    await pair.b.wait_ready()
    code, out, err = await ugem_drain(a_path, "--to", pair.b_config.admin.listen,
                                      "--token-file", str(token), "--json")  # fmt: skip
    assert code == 0, out + err
    again = json.loads(out)
    assert (again["state"], again["already"], again["moved"]) == ("done", both, len(on_a) - both)
    assert await queued_ids(pair.a_config) == set()
    assert len(await queued_ids(pair.b_config)) == N
    await pair.everything_delivered_once()
