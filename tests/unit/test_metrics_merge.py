"""Several workers' /metrics pages as one (`ugem.core.metrics_merge`).

Every sample gets its worker's label, with or without labels of its own;
each family's HELP and TYPE appear once, followed by every worker's samples
(one group per family, as the exposition format asks); the merged page of
two real `Metrics` registries parses with prometheus_client's own parser
and its counters add up.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ugem.core.metrics import Metrics
from ugem.core.metrics_merge import merge

PAGE = """# HELP ugem_x_total Things.
# TYPE ugem_x_total counter
ugem_x_total{state="a"} 1.0
ugem_x_total{} 2.0
# HELP ugem_up Up.
# TYPE ugem_up gauge
ugem_up 1.0
"""


def test_each_sample_gets_its_worker_and_each_family_one_head() -> None:
    merged = merge([(0, PAGE), (1, PAGE.replace("1.0", "5.0"))]).splitlines()
    assert merged == [
        "# HELP ugem_x_total Things.",
        "# TYPE ugem_x_total counter",
        'ugem_x_total{worker="0",state="a"} 1.0',
        'ugem_x_total{worker="0"} 2.0',
        'ugem_x_total{worker="1",state="a"} 5.0',
        'ugem_x_total{worker="1"} 2.0',
        "# HELP ugem_up Up.",
        "# TYPE ugem_up gauge",
        'ugem_up{worker="0"} 1.0',
        'ugem_up{worker="1"} 5.0',
    ]


def test_two_real_registries_merge_into_a_page_prometheus_reads() -> None:
    first, second = Metrics(), Metrics()
    first.count("accepted")
    second.count("accepted")
    second.count("accepted")
    pages = [(0, first.render().decode()), (1, second.render().decode())]
    families = {f.name: f for f in text_string_to_metric_families(merge(pages))}
    accepted = [
        s for s in families["ugem_messages"].samples if s.labels.get("outcome") == "accepted"
    ]
    assert sorted((s.labels["worker"], s.value) for s in accepted) == [("0", 1.0), ("1", 2.0)]
