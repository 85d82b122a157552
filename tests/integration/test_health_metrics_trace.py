"""Scenario: what an operator's monitoring sees of a node.

`/healthz` answers while the process lives; `/readyz` is 200 when running and
503 with a reason when the spool is unhealthy; `/metrics` counts what the
node did; with `[anomaly] trace_file` the relay's events are written in the
trace format the detector replays.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink


async def test_health_readiness_and_metrics(tmp_path: Path, sink: Sink) -> None:
    config, _ = await node_relaying_to(tmp_path, sink)
    async with (
        running_node(config) as node,
        httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
        await sink.wait_for(1)
        text = (await http.get("/metrics")).text
        assert 'ugem_messages_total{outcome="accepted"} 1.0' in text
        assert "ugem_spool_fsync_batch_messages_count" in text
        assert "ugem_accept_latency_seconds_bucket" in text

        assert node.spool is not None
        await node.spool.close()  # the spool goes away under the node's feet
        unready = await http.get("/readyz")
        assert unready.status_code == 503
        assert "spool" in unready.json()["reason"]


async def test_trace_file_follows_the_trace_format(tmp_path: Path, sink: Sink) -> None:
    trace = tmp_path / "trace.jsonl"
    config, _ = await node_relaying_to(tmp_path, sink, anomaly={"trace_file": str(trace)})
    async with running_node(config):
        rcpts = ["x@example.org", "y@example.org"]
        await send_mail(config, "a@mdai.gov.kz", rcpts, "127.0.0.2")
        await sink.wait_for(1)
        await send_mail(config, "z@example.org", ["info@mdai.gov.kz"], "127.0.0.9")
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    accepted = [e for e in lines if e["event"] == "accepted"]
    assert len(accepted) == 1, "inbound mail from the internet is not a connection's traffic"
    assert accepted[0]["connection"] == "mdai.gov.kz"
    assert accepted[0]["ip"] == "127.0.0.2"
    assert accepted[0]["sender"] == "a@mdai.gov.kz"
    assert accepted[0]["rcpts"] == ["x@example.org", "y@example.org"]
    assert accepted[0]["size"] > 0
    delivered = [e for e in lines if e["event"] == "delivered"]
    assert sorted(e["rcpt"] for e in delivered) == ["x@example.org", "y@example.org"]
    assert all(e["code"] == 250 and e["connection"] == "mdai.gov.kz" for e in delivered)
    assert [e["ts"] for e in lines] == sorted(e["ts"] for e in lines)
