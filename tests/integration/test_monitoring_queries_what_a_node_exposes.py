"""Scenario: the dashboards and alert rules of ugem/deploy watch a real node.

A node relays one message; its `/metrics` page then declares every metric the
Grafana dashboards and the Prometheus alert rules query (so renaming a metric
breaks this test, not the dashboards in silence), counts the message and its
recipient apart, gives the age of the oldest queued message per state, its
build and readiness, and has no `_created` series.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.monitoring import (
    alert_exprs,
    dashboard_exprs,
    dashboard_variable_queries,
    exposed_names,
    metric_names,
)
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read


def values(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, its labels) -> value, of every sample on a Prometheus text page."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: str, name: str, **labels: str) -> float | None:
    return values(page).get((name, frozenset(labels.items())))


async def test_every_queried_metric_is_on_a_nodes_metrics_page(tmp_path: Path, sink: Sink) -> None:
    config, _ = await node_relaying_to(tmp_path, sink)
    async with (
        running_node(config),
        httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http,
    ):
        await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
        await sink.wait_for(1)

        async def scrape() -> str:
            return (await http.get("/metrics")).text

        page = await eventually_read(  # the scan after the delivery found the queue empty
            scrape, lambda p: value(p, "ugem_queue_messages", state="active") == 0
        )

    queried = metric_names(alert_exprs() + dashboard_exprs() + dashboard_variable_queries())
    assert len(queried) >= 25
    missing = queried - exposed_names(page)
    assert not missing, f"queried but not exposed: {sorted(missing)}"
    assert "_created" not in page

    assert value(page, "ugem_messages_total", outcome="accepted") == 1
    assert value(page, "ugem_recipients_total", outcome="delivered", destination="other") == 1
    assert value(page, "ugem_recipients_total", outcome="deferred", destination="other") == 0
    for state in ("active", "deferred", "held"):
        assert value(page, "ugem_queue_oldest_age_seconds", state=state) == 0
    builds = [labels for (name, labels) in values(page) if name == "ugem_build_info"]
    assert len(builds) == 1 and dict(builds[0])["version"]
    assert value(page, "ugem_ready") == 1
