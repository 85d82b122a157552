"""ugem.core.metrics: delivery replies by class, per connection and per destination, bounded."""

from __future__ import annotations

from ugem.core.metrics import DESTINATION_LABELS, NO_CONNECTION, OTHER_DESTINATION, Metrics


def samples(metrics: Metrics, name: str, by: str) -> dict[tuple[str, str], float]:
    """The series of counter `name`: (its label `by`, class) -> value."""
    return {
        (sample.labels[by], sample.labels["class"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_replies_are_counted_by_connection_and_by_destination_with_their_class() -> None:
    metrics = Metrics()
    metrics.delivery_reply("mdai.gov.kz", "gmail.com", "rate-limited")
    metrics.delivery_reply("mdai.gov.kz", "gmail.com", "rate-limited")
    metrics.delivery_reply("mdai.gov.kz", "mail.ru", "delivered")
    metrics.delivery_reply("", "mdai.gov.kz", "delivered")  # inbound mail, a DSN
    assert samples(metrics, "ugem_delivery_replies_total", "connection") == {
        ("mdai.gov.kz", "rate-limited"): 2,
        ("mdai.gov.kz", "delivered"): 1,
        (NO_CONNECTION, "delivered"): 1,
    }
    assert samples(metrics, "ugem_destination_replies_total", "destination") == {
        ("gmail.com", "rate-limited"): 2,
        ("mail.ru", "delivered"): 1,
        ("mdai.gov.kz", "delivered"): 1,
    }


def test_past_the_first_destinations_the_rest_share_one_label() -> None:
    metrics = Metrics()
    for n in range(DESTINATION_LABELS + 300):
        metrics.delivery_reply("mdai.gov.kz", f"d{n}.example", "delivered")
    metrics.delivery_reply("mdai.gov.kz", "d0.example", "delivered")  # one seen first: its own
    series = samples(metrics, "ugem_destination_replies_total", "destination")
    assert len(series) == DESTINATION_LABELS + 1
    assert series[OTHER_DESTINATION, "delivered"] == 300
    assert series["d0.example", "delivered"] == 2
    assert ("d250.example", "delivered") not in series
    assert len(metrics._by_destination) == DESTINATION_LABELS + 1  # children kept: bounded too
