"""Scenario: Schemathesis throws schema-generated requests at a running node's admin API.

`ugem serve` runs as a child process on loopback, its store seeded with two
connections (one with a disconnection scheduled), an application and an admin
token. Schemathesis reads `/openapi.json` and, for every operation, sends a
bounded number of generated requests with the admin token (not the drain's, which
change the node's mode for every later request: `MODE_CHANGING`). No answer may be a
5xx, and every answer must be one the schema documents for that operation,
with the documented content type and a body that fits the documented
schema. Bounded: `EXAMPLES` per operation, no Hypothesis database, no
shrinking of a failure beyond a few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.connections import plain
from tests.support.node import NodeProcess, node_config
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.model import Contact
from ugem.core.registry import Registry
from ugem.core.services.applications import ApplicationForm, ApplicationService
from ugem.core.services.audit import AuditLog
from ugem.core.services.connections import ConnectionService
from ugem.core.services.tokens import Role, TokenService
from ugem.core.store import open_store

EXAMPLES = 12  # generated requests per operation
TOKEN_NAME = "schemathesis-admin-5c1e"  # not a name the generator will revoke by chance
# Operations that change the node's mode for every later request: a generated drain makes the
# node stop accepting, and /readyz then answers 503 by design (its own scenarios test it:
# test_drain_*.py). Generating them would fail the next /readyz depending on the order.
MODE_CHANGING = "/v1/drain"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def _seed(config: Config) -> str:
    """Connections, an application and an admin token in the node's store; the secret."""
    store, clock = open_store(config.store_url), SystemClock()
    try:
        audit = AuditLog(store, clock)
        conns = ConnectionService(store, Registry(store, clock), audit, clock)
        await conns.add(plain("a.gov.kz", "192.0.2.10"), "seed")
        await conns.add(plain("b.gov.kz", "192.0.2.11"), "seed")
        await conns.disconnect("b.gov.kz", "status", "seed", clock.now() + 86400)
        form = ApplicationForm(
            "1", "c.gov.kz", "Akimat", ["203.0.113.5"], "Akimat", "local-government",
            [Contact("Ivanov Ivan", "it@c.gov.kz")],
        )  # fmt: skip
        await ApplicationService(store, conns, audit, clock).receive(form, "seed")
        _, secret = await TokenService(store, audit, clock).create(TOKEN_NAME, Role.ADMIN, "seed")
        return secret
    finally:
        await store.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, admin token) of a running `ugem serve`."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    config, path = node_config(tmp, delivery={"dns_servers": ["127.0.0.1:9"], "dns_timeout": 0.2})
    config.data_path.mkdir(parents=True, exist_ok=True)
    secret = asyncio.run(_seed(config))
    proc = NodeProcess(path, config)
    proc.start()
    try:
        asyncio.run(proc.wait_ready())
        yield f"http://{config.admin.listen}", secret
    finally:
        proc.kill()


def test_no_500_and_no_answer_outside_the_schema(node: tuple[str, str]) -> None:
    base_url, secret = node
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    auth = {"Authorization": f"Bearer {secret}"}
    every = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [op for op in every if not op.path.startswith(MODE_CHANGING)]
    assert len(operations) > 20, "the schema lists the /v1/ operations"
    strategy = st.one_of([op.as_strategy() for op in operations])

    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        with requests.Session() as session:
            response = case.call(base_url=base_url, session=session, headers=auth, timeout=10)
        case.validate_response(response, checks=CHECKS, headers=auth)

    check()
