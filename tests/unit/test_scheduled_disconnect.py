"""A disconnection agreed for later (paragraph 11): scheduled, applied at that time, cancelable.

Through the API over real services on a `FakeClock`: `POST .../disconnect` with
a future `effective_at` keeps the connection connected, shows the plan on it
and mails "disconnection scheduled"; `disconnect_due` (the step the node runs
every few seconds) does nothing a second before the time and disconnects at
it, mailing "disconnection done" and auditing it as `schedule`. `DELETE
.../disconnect` or `resume` cancels the plan; a past `effective_at` is now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.mail import read_notice
from ugem.core.clock import FakeClock
from ugem.core.model import Connection, ConnState, Contact, Language, OrgKind
from ugem.core.services.tokens import Role
from ugem.core.workdays import ALMATY

CONN = "kazpost.kz"
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=ALMATY)
AT = dt.datetime(2026, 3, 31, 18, 0, tzinfo=ALMATY)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, FakeClock(NOW.timestamp())) as api:
        conn = Connection(
            id=CONN,
            org_name="Казпочта",
            kind=OrgKind.QUASI_PUBLIC,
            domains=(CONN,),
            servers=("198.51.100.7",),
            contacts=(Contact("Ахметов Ерлан", "it@kazpost.kz"),),
            language=Language.RU,
        )
        await api.services.connections.add(conn, "test")
        yield api


async def schedule(api: AdminApi, effective_at: Any) -> dict[str, Any]:
    body = {"reason": "letter No. 12: no longer quasi-public", "effective_at": effective_at}
    answer = await api.call("POST", f"/v1/connections/{CONN}/disconnect", body=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def state(api: AdminApi) -> str:
    return str((await api.call("GET", f"/v1/connections/{CONN}")).json()["state"])


async def test_applied_at_effective_at_and_not_before(api: AdminApi) -> None:
    conn = await schedule(api, AT.isoformat())
    assert conn["state"] == "connected"
    assert conn["disconnect"]["at"] == AT.isoformat()
    assert conn["disconnect"]["by"] == "api:admin-token"
    [scheduled] = [read_notice(m.data) for m in api.outbox.sent]
    assert scheduled.subject.startswith(
        "Отключение kazpost.kz от ЕШЭП назначено на 2026-03-31 18:00"
    )
    assert "on\n2026-03-31 18:00 (Asia/Almaty time)" in scheduled.parts[1]

    api.clock.set(AT.timestamp() - 1)
    assert await api.services.connections.disconnect_due() == []
    assert await state(api) == "connected"
    assert api.registry.by_domain(CONN) is not None

    api.clock.set(AT.timestamp())
    [done] = await api.services.connections.disconnect_due()
    assert (done.state, done.disconnect) == (ConnState.DISCONNECTED, None)
    assert await state(api) == "disconnected"
    assert api.registry.by_domain(CONN) is None  # the SMTP side sees it at once
    notice = read_notice(api.outbox.sent[-1].data)
    assert notice.subject.startswith("Почтовая система kazpost.kz отключена от ЕШЭП")
    assert "Основание: letter No. 12: no longer quasi-public" in notice.parts[0]
    assert await api.services.connections.disconnect_due() == []  # once only
    assert len(api.outbox.sent) == 2

    log = (await api.call("GET", f"/v1/audit?target={CONN}")).json()["items"]
    assert [(e["actor"], e["action"]) for e in log[:2]] == [
        ("schedule", "connection.disconnect"),
        ("api:admin-token", "connection.disconnect-schedule"),
    ]


async def test_a_time_without_a_zone_is_almaty_time(api: AdminApi) -> None:
    conn = await schedule(api, "2026-03-31T18:00:00")
    assert conn["disconnect"]["at"] == AT.isoformat()


async def test_a_past_effective_at_disconnects_now(api: AdminApi) -> None:
    conn = await schedule(api, (NOW - dt.timedelta(hours=1)).isoformat())
    assert (conn["state"], conn["disconnect"]) == ("disconnected", None)


@pytest.mark.parametrize(("method", "verb"), [("DELETE", "disconnect"), ("POST", "resume")])
async def test_an_operator_cancels_it(api: AdminApi, method: str, verb: str) -> None:
    await schedule(api, AT.timestamp())
    body = None if method == "DELETE" else {"reason": "agreed to stay"}
    answer = await api.call(method, f"/v1/connections/{CONN}/{verb}", Role.OPERATOR, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["disconnect"] is None
    api.clock.set(AT.timestamp() + 60)
    assert await api.services.connections.disconnect_due() == []
    assert await state(api) == "connected"
    again = await api.call("DELETE", f"/v1/connections/{CONN}/disconnect", Role.OPERATOR)
    assert again.status_code == 409
    assert "no disconnection scheduled" in again.json()["detail"]
    [entry] = (await api.call("GET", "/v1/audit?action=connection.disconnect-cancel")).json()[
        "items"
    ]
    assert entry["before"]["at"] == AT.isoformat() and entry["after"] is None


async def test_more_than_five_years_ahead_is_refused_naming_the_field(api: AdminApi) -> None:
    body = {"effective_at": "9999-12-31T23:59:59-12:00"}
    answer = await api.call("POST", f"/v1/connections/{CONN}/disconnect", body=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "effective_at"]
    assert await state(api) == "connected"
