"""What /v1/incidents and /v1/overrides answer: roles, filters, moves, errors.

A viewer reads incidents and overrides; an operator acknowledges and closes
incidents and sets and cancels overrides; a permanent exemption needs an
admin. An unknown number or id is 404, a move or override that does not fit
is 409 saying why, a bad field 422 naming it. Times given without a zone
are Asia/Almaty time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from ugem.core.services.incidents import Action, Evidence, GatewayFacts, Mode, Suspect
from ugem.core.services.tokens import Role
from ugem.core.times import rfc3339

CONN, OTHER = "a.gov.kz", "b.gov.kz"
REASON = "412 recipients in 5 min against a usual 9 ± 4; 31 % bounced as unknown recipients"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        for conn in (CONN, OTHER):
            await api.store.add(plain(conn))
        await api.registry.sync()
        yield api


async def opened(api: AdminApi, conn: str, action: Action = Action.SUSPENDED) -> int:
    numbers = {"recipients_5m": 412.0, "usual_recipients_5m": 9.0}
    evidence = Evidence(api.clock.now(), action, REASON, numbers)
    mode = Mode.ENFORCE if action == Action.SUSPENDED else Mode.SHADOW
    incident, _ = await api.services.incidents.record(conn, mode, evidence, "detector")
    return incident.id


async def test_a_viewer_reads_incidents_with_their_evidence(api: AdminApi) -> None:
    first = await opened(api, CONN)
    second = await opened(api, OTHER, Action.WOULD_SUSPEND)
    listed = await api.call("GET", "/v1/incidents", Role.VIEWER)
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()["items"]] == [second, first]
    shown = (await api.call("GET", f"/v1/incidents/{first}", Role.VIEWER)).json()
    assert (shown["connection"], shown["state"], shown["mode"], shown["action"]) == (
        CONN,
        "open",
        "enforce",
        "suspended",
    )
    assert shown["reason"] == REASON and shown["verdicts"] == 1
    [evidence] = shown["evidence"]
    assert evidence["findings"] == [
        "412 recipients in 5 min against a usual 9 ± 4",
        "31 % bounced as unknown recipients",
    ]
    assert evidence["numbers"] == {"recipients_5m": 412.0, "usual_recipients_5m": 9.0}
    by_conn = await api.call("GET", f"/v1/incidents?connection={OTHER}", Role.VIEWER)
    assert [i["id"] for i in by_conn.json()["items"]] == [second]
    assert (await api.call("GET", "/v1/incidents", None)).status_code == 401


async def test_an_operator_acknowledges_and_closes_and_a_wrong_move_is_409(api: AdminApi) -> None:
    ident = await opened(api, CONN)
    path = f"/v1/incidents/{ident}"
    assert (await api.call("POST", f"{path}/ack", Role.VIEWER)).status_code == 403
    acked = await api.call("POST", f"{path}/ack", Role.OPERATOR)  # no body: no comment
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        "api:operator-token",
    )
    twice = await api.call("POST", f"{path}/ack", Role.OPERATOR, {})
    assert twice.status_code == 409
    assert "acknowledged by api:operator-token" in twice.json()["detail"]
    body = {"comment": "a hijacked mailbox; password reset"}
    closed = await api.call("POST", f"{path}/close", Role.OPERATOR, body)
    assert closed.status_code == 200, closed.text
    assert closed.json()["comment"] == body["comment"]
    assert (await api.call("GET", "/v1/incidents?state=open", Role.VIEWER)).json()["items"] == []
    again = await api.call("POST", f"{path}/close", Role.OPERATOR, {})
    assert again.status_code == 409 and "stays closed" in again.json()["detail"]
    audit = (await api.call("GET", f"/v1/audit?target={CONN}", Role.VIEWER)).json()["items"]
    assert [(e["actor"], e["action"]) for e in audit] == [
        ("api:operator-token", "incident.close"),
        ("api:operator-token", "incident.acknowledge"),
        ("detector", "incident.open"),
    ]
    assert audit[0]["reason"] == body["comment"] and audit[0]["details"] == {"incident": ident}


async def test_gateway_incidents_are_listed_with_their_kind_and_move_like_the_others(
    api: AdminApi,
) -> None:
    detector = await opened(api, CONN)
    subject = "gateway:198.51.100.25@zen.spamhaus.org"
    listed = Evidence(api.clock.now(), Action.LISTED, "listed on zen.spamhaus.org", {})
    suspect = Suspect(CONN, 1.0, 7, {"blocklisted": 6}, 0, f"incident {detector} (suspended)")
    facts = GatewayFacts(("198.51.100.25",), "zen.spamhaus.org", ("zen.spamhaus.org",), (suspect,))
    gateway, _ = await api.services.incidents.record_gateway(subject, listed, "reputation", facts)
    listed_all = (await api.call("GET", "/v1/incidents", Role.VIEWER)).json()["items"]
    assert [(i["id"], i["kind"], i["mode"]) for i in listed_all] == [
        (gateway.id, "gateway", "alert"),
        (detector, "connection", "enforce"),
    ]
    shown = listed_all[0]
    assert (shown["connection"], shown["action"], shown["zone"]) == (
        subject, "listed", "zen.spamhaus.org",
    )  # fmt: skip
    assert shown["addresses"] == ["198.51.100.25"] and shown["blocklists"] == ["zen.spamhaus.org"]
    assert shown["suspects"] == [
        {"connection": CONN, "score": 1.0, "attempts": 7, "rejections": {"blocklisted": 6},
         "complaints": 0, "anomaly": f"incident {detector} (suspended)"},
    ]  # fmt: skip
    assert listed_all[1]["suspects"] == [] and listed_all[1]["addresses"] == []
    by_subject = await api.call("GET", f"/v1/incidents?connection={subject}", Role.VIEWER)
    assert [i["id"] for i in by_subject.json()["items"]] == [gateway.id]
    path = f"/v1/incidents/{gateway.id}"
    acked = await api.call("POST", f"{path}/ack", Role.OPERATOR, {"comment": "delisting asked"})
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    closed = await api.call("POST", f"{path}/close", Role.OPERATOR)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert api.outbox.sent == []  # moving it mails no one, no owner above all


async def test_unknown_incidents_are_404_and_bad_input_422(api: AdminApi) -> None:
    assert (await api.call("GET", "/v1/incidents/7")).status_code == 404
    assert (await api.call("POST", "/v1/incidents/7/ack", body={})).status_code == 404
    assert (await api.call("GET", "/v1/incidents/seven")).status_code == 422
    assert (await api.call("GET", "/v1/incidents?state=lost")).status_code == 422
    ident = await opened(api, CONN)
    long = await api.call("POST", f"/v1/incidents/{ident}/close", body={"comment": "x" * 2001})
    assert long.status_code == 422 and long.json()["errors"][0]["loc"][-1] == "comment"


def ceiling(**change: object) -> dict[str, object]:
    body: dict[str, object] = {
        "connection": CONN,
        "kind": "ceiling",
        "reason": "quarterly newsletter",
        "starts_at": "2026-01-01T12:00",  # Asia/Almaty: 07:00 UTC, after the FakeClock's start
        "ends_at": "2026-01-01T16:00+05:00",
        "max_messages_per_hour": 5000,
    }
    return body | change


async def test_an_operator_sets_lists_and_cancels_an_override(api: AdminApi) -> None:
    assert (await api.call("POST", "/v1/overrides", Role.VIEWER, ceiling())).status_code == 403
    made = await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling())
    assert made.status_code == 201, made.text
    override = made.json()
    # read as Almaty time without an offset, honoured with one; written with it
    assert override["starts_at"] == "2026-01-01T12:00:00+05:00"
    assert override["ends_at"] == "2026-01-01T16:00:00+05:00"
    assert (override["created_at"], override["cancelled_at"]) == (rfc3339(api.clock.now()), None)
    assert (override["created_by"], override["status"], override["in_force"]) == (
        "api:operator-token",
        "to come",
        False,
    )
    api.clock.advance(8 * 3600)  # 13:00 Almaty
    shown = (await api.call("GET", f"/v1/overrides/{override['id']}", Role.VIEWER)).json()
    assert (shown["status"], shown["in_force"]) == ("in force", True)
    listed = await api.call("GET", f"/v1/overrides?connection={CONN}&current=true", Role.VIEWER)
    assert [o["id"] for o in listed.json()["items"]] == [override["id"]]
    cancel = f"/v1/overrides/{override['id']}/cancel"
    done = await api.call("POST", cancel, Role.OPERATOR, {"reason": "mailing postponed"})
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    assert (await api.call("POST", cancel, Role.OPERATOR)).status_code == 409
    current = await api.call("GET", "/v1/overrides?current=true", Role.VIEWER)
    assert current.json() == {"items": [], "total": 0, "next_cursor": None}


async def test_override_errors_name_the_field_the_id_or_the_other_override(
    api: AdminApi,
) -> None:
    missing = await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling(ends_at=None))
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"][-1] == "ends_at"
    typo = await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling(max_per_hour=5))
    assert typo.status_code == 422
    nobody = await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling(connection="x.kz"))
    assert nobody.status_code == 404 and "no connection 'x.kz'" in nobody.json()["detail"]
    first = (await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling())).json()
    overlap = await api.call("POST", "/v1/overrides", Role.OPERATOR, ceiling())
    assert overlap.status_code == 409 and f"override {first['id']}" in overlap.json()["detail"]
    assert (await api.call("GET", "/v1/overrides/nope", Role.VIEWER)).status_code == 404


async def test_a_permanent_exemption_needs_an_admin(api: AdminApi) -> None:
    body = {"connection": OTHER, "kind": "exempt", "reason": "agreed", "permanent": True}
    refused = await api.call("POST", "/v1/overrides", Role.OPERATOR, body)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    made = await api.call("POST", "/v1/overrides", Role.ADMIN, body)
    assert made.status_code == 201, made.text
    assert made.json()["ends_at"] is None and made.json()["status"] == "in force"
