"""ugem.core.metrics: messages and recipients apart, bounded destination classes, the queue's
oldest message, build info, and no `_created` series."""

from __future__ import annotations

import platform

from ugem.core.clock import FakeClock
from ugem.core.destinations import CLASSES
from ugem.core.metrics import NO_CONNECTION, Metrics


def samples(metrics: Metrics, name: str, *by: str) -> dict[tuple[str, ...], float]:
    """The series of metric `name`: (its labels `by`, in order) -> value."""
    return {
        tuple(sample.labels[label] for label in by): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def counted(metrics: Metrics, name: str, *by: str) -> dict[tuple[str, ...], float]:
    """The series of `name` that counted something (those known in advance start at 0)."""
    return {labels: value for labels, value in samples(metrics, name, *by).items() if value}


def test_replies_are_counted_by_connection_and_by_destination_class() -> None:
    metrics = Metrics()
    metrics.delivery_reply("mdai.gov.kz", "gmail.com", "rate-limited")
    metrics.delivery_reply("mdai.gov.kz", "googlemail.com", "rate-limited")
    metrics.delivery_reply("mdai.gov.kz", "mail.ru", "delivered")
    metrics.delivery_reply("", "mdai.gov.kz", "delivered")  # inbound mail, a DSN
    assert samples(metrics, "ugem_delivery_replies_total", "connection", "class") == {
        ("mdai.gov.kz", "rate-limited"): 2,
        ("mdai.gov.kz", "delivered"): 1,
        (NO_CONNECTION, "delivered"): 1,
    }
    assert samples(metrics, "ugem_destination_replies_total", "destination", "class") == {
        ("gmail", "rate-limited"): 2,
        ("mail.ru", "delivered"): 1,
        ("gov.kz", "delivered"): 1,
    }


def test_destinations_never_appear_as_raw_domains_however_many() -> None:
    metrics = Metrics()
    for n in range(500):
        metrics.delivery_reply("mdai.gov.kz", f"d{n}.example", "delivered")
        metrics.recipient("delivered", f"school{n}.edu.kz")
    replies = samples(metrics, "ugem_destination_replies_total", "destination", "class")
    assert replies == {("other", "delivered"): 500}
    recipients = counted(metrics, "ugem_recipients_total", "outcome", "destination")
    assert recipients == {("delivered", "kz"): 500}
    assert len(metrics._by_destination) == 1 and len(metrics._recipients) == 1  # children too


def test_messages_and_recipients_are_counted_apart() -> None:
    metrics = Metrics()
    metrics.count("accepted")  # one message to three recipients
    metrics.recipient("delivered", "gmail.com")
    metrics.recipient("deferred", "minfin.gov.kz")
    metrics.recipient("deferred", "minfin.gov.kz")  # a second attempt deferred it again
    metrics.recipient("expired", "minfin.gov.kz")
    metrics.recipient("bounced", "example.org")
    metrics.count("rejected")
    assert samples(metrics, "ugem_messages_total", "outcome") == {
        ("accepted",): 1,
        ("rejected",): 1,
    }
    assert counted(metrics, "ugem_recipients_total", "outcome", "destination") == {
        ("delivered", "gmail"): 1,
        ("deferred", "gov.kz"): 2,
        ("expired", "gov.kz"): 1,
        ("bounced", "other"): 1,
    }


def test_series_whose_labels_are_known_start_at_zero() -> None:
    metrics = Metrics()  # so that increase() sees the first one counted
    recipients = samples(metrics, "ugem_recipients_total", "outcome", "destination")
    outcomes = ("delivered", "deferred", "bounced", "expired")
    assert recipients == {(o, c): 0 for o in outcomes for c in CLASSES}
    assert samples(metrics, "ugem_messages_total", "outcome") == {
        ("accepted",): 0,
        ("rejected",): 0,
    }
    for name in ("ugem_detector_suspensions_total", "ugem_incidents_opened_total"):
        assert samples(metrics, name, "mode") == {("enforce",): 0, ("shadow",): 0}
    causes = samples(metrics, "ugem_gateway_incidents_opened_total", "cause")
    assert causes == {("listed",): 0, ("blocklisted-replies",): 0}


def test_the_oldest_message_age_is_read_at_the_scrape() -> None:
    metrics, clock = Metrics(), FakeClock()
    metrics.queue_state("deferred", 3, clock.now() - 60, clock.now)
    metrics.queue_state("held", 0, None, clock.now)
    clock.advance(40)
    assert samples(metrics, "ugem_queue_oldest_age_seconds", "state") == {
        ("deferred",): 100,
        ("held",): 0,
    }
    assert samples(metrics, "ugem_queue_messages", "state") == {("deferred",): 3, ("held",): 0}
    metrics.queue_state("deferred", 1, clock.now() + 5, clock.now)  # a clock behind: never < 0
    assert samples(metrics, "ugem_queue_oldest_age_seconds", "state")["deferred",] == 0


def test_build_info_names_the_version_and_python() -> None:
    (labels,) = samples(Metrics(), "ugem_build_info", "version", "python")
    version, python = labels
    assert version and version != "unknown"  # the package is installed (editable or not)
    assert python == platform.python_version()
    assert b'ugem_build_info{python="' in Metrics().render()


def test_no_created_series_for_counters_and_histograms() -> None:
    metrics = Metrics()
    metrics.count("accepted")
    metrics.delivery_latency.observe(1.5)
    metrics.recipient("delivered", "gmail.com")
    text = metrics.render().decode()
    assert "ugem_messages_total" in text and "ugem_delivery_latency_seconds_count" in text
    assert "_created" not in text


def test_destination_classes_are_the_documented_ones() -> None:
    page = Metrics().render().decode().splitlines()
    (help_text,) = [line for line in page if line.startswith("# HELP ugem_recipients_total ")]
    assert all(cls in help_text for cls in CLASSES)
