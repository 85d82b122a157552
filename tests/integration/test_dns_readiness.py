"""Scenario: an organisation's DNS readiness, in its application's checks and `ugem dkim check`.

A private dnsmasq serves two applicants' zones; the node asks it (`[delivery]
dns_servers`) and knows the gateway's outbound address (`[node]
public_addresses`). akimat.gov.kz published what the gateway needs: MX, an
SPF record that includes the gateway, the DKIM record `ugem dkim keygen`
printed and a DMARC policy. Its application's automatic checks pass mx, spf,
dkim and dmarc with the records found, and it is connected with the
operator's finding for the one check DNS cannot answer (routable).
maslikhat.gov.kz's SPF leaves the gateway out and it has no DMARC record nor
key: those checks fail with the reason and the connection is refused, naming
them. `ugem dkim check` gives the same verdicts and exits 0 and 1.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.node import api_client, node_config, running_node
from ugem.cli import main
from ugem.core.config import Config
from ugem.core.dkim_keys import KeyStore, dns_records, key_path
from ugem.core.services.tokens import Role

READY, UNREADY = "akimat.gov.kz", "maslikhat.gov.kz"
GATEWAY_IP = "198.51.100.25"


def form(domain: str, server: str) -> dict[str, Any]:
    return {
        "number": "0417",
        "domain": domain,
        "domain_owner": "Akimat",
        "servers": [server],
        "org_name": "Akimat",
        "kind": "local-government",
        "contacts": [{"full_name": "IT", "email": f"it@{domain}"}],
    }


def zone(keys: KeyStore) -> dict[str, Any]:
    made = keys.keygen(READY, "s1", with_ed25519=True)  # as `ugem dkim keygen --ed25519`
    return {
        "mx": {READY: [(10, f"mx.{READY}")], UNREADY: [(10, f"mx.{UNREADY}")]},
        "txt": dict(dns_records(made))
        | {
            READY: f"v=spf1 mx include:_spf.{READY} -all",
            f"_spf.{READY}": f"v=spf1 ip4:{GATEWAY_IP} -all",
            f"_dmarc.{READY}": "v=DMARC1; p=quarantine",
            UNREADY: "v=spf1 mx -all",
        },
    }


def ready_node(tmp_path: Path, dns: Any) -> tuple[Config, Path]:
    return node_config(
        tmp_path,
        node={"public_addresses": [GATEWAY_IP]},
        delivery={"dns_servers": [dns.address], "dns_timeout": 2.0},
    )


async def checked(
    api: httpx.AsyncClient, domain: str, server: str, findings: list[Any]
) -> dict[str, Any]:
    app = (await api.post("/v1/applications", json=form(domain, server))).json()
    answer = await api.post(f"/v1/applications/{app['id']}/checks", json={"findings": findings})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_application_checks_show_the_dns_readiness(tmp_path: Path, dns_server: Any) -> None:
    dns = await dns_server(**zone(KeyStore(tmp_path / "var" / "dkim")))
    config, _ = ready_node(tmp_path, dns)
    assert key_path(config) == tmp_path / "var" / "dkim"
    routable = {"name": "routable", "ok": True, "note": "over the STS channel"}
    async with running_node(config) as node, api_client(node, "root", Role.ADMIN) as api:
        ready = await checked(api, READY, "85.29.130.25", [routable])
        found = {c["name"]: c for c in ready["checks"] if c["by"] == "auto"}
        assert [(name, c["ok"]) for name, c in found.items()] == [
            ("eligible", True), ("servers-free", True), ("domain-free", True), ("mx", True),
            ("spf", True), ("dkim", True), ("dkim-ed25519", True), ("dmarc", True),
        ]  # fmt: skip
        assert found["mx"]["note"] == f"10 mx.{READY}"
        assert found["spf"]["note"].endswith(f"({GATEWAY_IP}: pass)")
        assert found["dkim"]["note"].startswith(f"s1._domainkey.{READY}: v=DKIM1; k=rsa; p=")
        assert found["dmarc"]["note"] == "p=quarantine: v=DMARC1; p=quarantine"
        decided = await api.post(
            f"/v1/applications/{ready['id']}/decision", json={"decision": "connect"}
        )
        assert decided.status_code == 200, decided.text

        unready = await checked(api, UNREADY, "85.29.130.26", [routable])
        verdicts = {c["name"]: (c["ok"], c["note"]) for c in unready["checks"]}
        assert verdicts["mx"][0] and not verdicts["spf"][0]
        assert verdicts["spf"][1] == f"v=spf1 mx -all ({GATEWAY_IP}: fail)"
        assert verdicts["dkim"] == (
            False,
            f"no DKIM key for {UNREADY} in {key_path(config)} (ugem dkim keygen {UNREADY})",
        )
        assert verdicts["dmarc"] == (False, f"_dmarc.{UNREADY}: no v=DMARC1 record")
        refused = await api.post(
            f"/v1/applications/{unready['id']}/decision", json={"decision": "connect"}
        )
        assert refused.status_code == 409
        assert "checks failed: spf, dkim, dmarc" in refused.json()["detail"]


async def test_dkim_check_prints_the_findings_and_exits_0_only_when_all_pass(
    tmp_path: Path, dns_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dns = await dns_server(**zone(KeyStore(tmp_path / "var" / "dkim")))
    _, path = ready_node(tmp_path, dns)

    async def ugem(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["--config", str(path), "dkim", "check", *argv])
        return code, capsys.readouterr().out

    code, out = await ugem(READY)
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "PASS mx", "PASS spf", "PASS dkim", "PASS dkim-ed25519", "PASS dmarc",
    ]  # fmt: skip
    code, out = await ugem(UNREADY, "--json")
    report = json.loads(out)
    assert code == 1 and (report["domain"], report["ready"]) == (UNREADY, False)
    assert [(f["name"], f["ok"]) for f in report["findings"]] == [
        ("mx", True), ("spf", False), ("dkim", False), ("dmarc", False),
    ]  # fmt: skip
