"""`loadtest restart`: its options, the gateway settings it needs, the queue gauge it reads,
and its report. The run itself is in tests/integration/test_restart_over_a_full_queue.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.__main__ import parser
from loadtest.commands import restart_options
from loadtest.content import SizeDist
from loadtest.gateway import GatewayInstance, parse_queue_gauge
from loadtest.report import Report, Tally
from loadtest.restart import (
    RestartOptions,
    RestartResult,
    gateway_settings,
    render_json,
    render_text,
)
from ugem.core.config import load_config

METRICS = """# HELP ugem_queue_messages Messages in the queue by state
# TYPE ugem_queue_messages gauge
ugem_queue_messages{state="active"} 12.0
ugem_queue_messages{state="deferred"} 99988.0
ugem_queue_messages{state="held"} 0.0
# HELP ugem_queue_messages_other not this one
ugem_queue_messages_other{state="deferred"} 5.0
ugem_messages_total{outcome="accepted"} 100000.0
"""


def test_options_from_the_command_line(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["restart", "--messages", "300", "--workers", "2", "--size", "4096", "--connections", "8",
         "--ugem-set", "delivery.scan_interval=0.5", "--stall", "10s", "--workdir", str(tmp_path),
         "--keep", "--json"]
    )  # fmt: skip
    options = restart_options(args)
    assert (options.messages, options.workers, options.connections) == (300, 2, 8)
    assert options.size == SizeDist("fixed", 4096)
    assert options.ugem_overrides == {"delivery": {"scan_interval": "0.5"}}
    assert (options.stall, options.workdir, options.keep) == (10.0, tmp_path, True)
    defaults = restart_options(parser().parse_args(["restart"]))
    assert (defaults.messages, defaults.workers, defaults.connections) == (100_000, None, 50)


def test_settings_raise_the_caps_and_keep_the_queue_quiet(tmp_path: Path) -> None:
    options = RestartOptions(
        messages=150_000, connections=300, ugem_overrides={"delivery": {"max_backoff": "7200"}}
    )
    settings = gateway_settings(options)
    gateway = GatewayInstance(
        tmp_path, 2525, 8025, "example.org", ("127.0.0.1", 2526), ("127.0.0.2",), "mdai.gov.kz",
        overrides=settings,
    )  # fmt: skip
    gateway.write()
    config = load_config(gateway.config_path, {})  # the gateway accepts it
    assert config.smtp.max_connections_per_ip >= 300
    assert config.smtp.max_connections >= 600
    assert config.smtp.max_queue_backlog >= 150_000
    assert config.delivery.min_backoff == 3600
    assert config.delivery.max_backoff == 7200  # the caller's setting wins
    assert config.delivery.routes == {"example.org": "127.0.0.1:2526"}


def test_queue_gauge_from_metrics() -> None:
    assert parse_queue_gauge(METRICS) == {"active": 12, "deferred": 99988, "held": 0}
    assert parse_queue_gauge("") == {}
    workers = 'ugem_queue_messages{worker="0",state="held"} 2.0\n'
    workers += 'ugem_queue_messages{worker="1",state="held"} 3.0\n'
    assert parse_queue_gauge(workers) == {"held": 5}  # a node of workers: summed


def test_a_node_of_workers_has_one_admin_port(tmp_path: Path) -> None:
    gateway = GatewayInstance(
        tmp_path, 2525, 8025, "example.org", ("127.0.0.1", 2526), (), "x.kz", workers=3
    )
    assert gateway.admin_ports == [8025]


def _result(arrived: int) -> RestartResult:
    tally = Tally()
    for n in range(1000):
        tally.accept(f"r-{n}", 2048, 0.004)
    fill = Report.of(
        tally, 1.25, target="t", run_id="r", connections=50, per_connection=100,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0, finished_at=1001.25,
    )  # fmt: skip
    sink = {"messages": arrived, "unique_ids": arrived, "lost": 1000 - arrived, "duplicates": 0}
    return RestartResult(
        RestartOptions(messages=1000), fill, {"deferred": 990, "active": 10}, 0, 0.8,
        "made due 1000 messages", 1.5, 1.75, 4.0, sink,
    )  # fmt: skip


def test_report_as_text() -> None:
    text = render_text(_result(1000))
    assert "1000 messages of 2048 bytes over 50 connections, 1 worker" in text
    assert "accepted 1000 of 1000 at 800 msg/s" in text
    assert "1000 (active 10, deferred 990)" in text
    assert "SIGTERM: exit 0 in 0.80 s" in text
    assert "made due 1000 messages" in text
    assert "restart to ready   1.50 s" in text
    assert "to first arrival   1.75 s" in text
    assert "to last arrival    4.00 s (250 msg/s from the start)" in text
    assert "1000 distinct; lost 0, duplicates 0" in text


def test_report_as_json() -> None:
    data = json.loads(json.dumps(render_json(_result(990))))
    assert data["restart_s"] == {"ready": 1.5, "first_arrival": 1.75, "last_arrival": 4.0}
    assert data["delivery_rate"] == 990 / 4.0
    assert data["complete"] is False  # 10 lost
    assert data["queued"] == {"deferred": 990, "active": 10}
    assert data["fill"]["accepted"] == 1000 and data["load"]["workers"] == 1
    assert render_json(_result(1000))["complete"] is True
