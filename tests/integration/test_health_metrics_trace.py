"""Scenario: what an operator's monitoring sees of a node.

`/healthz` answers while the process lives; `/readyz` is 200 when running and
503 with a reason when the spool is unhealthy; `/metrics` counts what the
node did; with `[anomaly] trace_file` the relay's events are written in the
trace format the detector replays.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.support.clients import message, smtplib_send
from tests.support.node import connect, node_config, running_node, smtp_address
from tests.support.sink import Sink


async def test_health_readiness_and_metrics(tmp_path: Path, sink: Sink) -> None:
    config, _ = node_config(
        tmp_path, delivery={"routes": {"example.org": f"{sink.host}:{sink.port}"}}
    )
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    host, port = smtp_address(config)
    async with (
        running_node(config) as node,
        httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        await asyncio.to_thread(
            smtplib_send,
            host,
            port,
            "a@mdai.gov.kz",
            ["x@example.org"],
            message("a@mdai.gov.kz", "x@example.org"),
            "127.0.0.2",
        )
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
    config, _ = node_config(
        tmp_path,
        delivery={"routes": {"example.org": f"{sink.host}:{sink.port}"}},
        anomaly={"trace_file": str(trace)},
    )
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    host, port = smtp_address(config)
    async with running_node(config):
        await asyncio.to_thread(
            smtplib_send,
            host,
            port,
            "a@mdai.gov.kz",
            ["x@example.org", "y@example.org"],
            message("a@mdai.gov.kz", "x@example.org"),
            "127.0.0.2",
        )
        await sink.wait_for(1)
        await asyncio.to_thread(
            smtplib_send,
            host,
            port,
            "z@example.org",
            ["info@mdai.gov.kz"],
            message("z@example.org", "info@mdai.gov.kz"),
            "127.0.0.9",
        )
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
