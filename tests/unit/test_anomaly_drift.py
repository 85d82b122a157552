"""anomaly.drift: a rise that lasts adds up, a steady connection and a single burst do not."""

from __future__ import annotations

import math

from anomaly.baseline import BLOCK_S, Baseline
from anomaly.drift import SLACK, Z_MAX, Drift
from anomaly.features import Window
from anomaly.score import VOLUME_CAP, _volume

T0 = 1_780_000_000.0 // BLOCK_S * BLOCK_S
WEEK = 7 * 24 * 12  # 5-minute blocks


def learned(per_block: int = 40) -> tuple[Baseline, float]:
    """A baseline that saw `per_block` recipients (give or take 4) every block for a week."""
    baseline = Baseline(T0)
    for i in range(WEEK):
        baseline.add(T0 + i * BLOCK_S, per_block + (4 if i % 2 else -4))
    return baseline, T0 + WEEK * BLOCK_S


def run(baseline: Baseline, drift: Drift, start: float, counts: list[int]) -> None:
    """Feed one event of `counts[i]` recipients in block i, as the detector does."""
    for i, n in enumerate(counts):
        ts = start + i * BLOCK_S
        drift.note(ts, n, baseline)
        baseline.add(ts, n)


def test_usual_traffic_adds_nothing() -> None:
    baseline, now = learned()
    drift = Drift(now)
    run(baseline, drift, now, [36, 44] * 24)
    assert drift.decades() == 0.0 and drift.blocks == 0


def test_a_slow_rise_adds_up_and_says_for_how_long() -> None:
    baseline, now = learned()
    drift = Drift(now)
    ramp = [40 + 3 * i for i in range(24)]  # two hours, each block a little more
    run(baseline, drift, now, ramp)
    assert drift.decades() > 4.0  # past the most volume may weigh
    assert 15 <= drift.blocks <= 23  # it left the usual band a while ago, not at once
    # the sum is worth 2 x SLACK x S / ln 10 decades
    assert math.isclose(drift.decades(), 2 * SLACK * drift.total / math.log(10))


def test_one_burst_adds_at_most_z_max() -> None:
    baseline, now = learned()
    drift = Drift(now)
    run(baseline, drift, now, [40, 5000, 40])
    assert drift.total <= Z_MAX - SLACK


def test_silence_drains_the_sum() -> None:
    baseline, now = learned()
    drift = Drift(now)
    run(baseline, drift, now, [80] * 6)
    assert drift.total > 0
    drift.note(now + 20 * BLOCK_S, 40, baseline)  # 13 silent blocks in between
    assert drift.total == 0.0 and drift.blocks == 0


def test_a_cold_baseline_and_a_cleared_sum_add_nothing() -> None:
    baseline = Baseline(T0)
    drift = Drift(T0)
    run(baseline, drift, T0, [100, 200, 300])  # fewer blocks than make a slot warm
    assert drift.decades() == 0.0  # no usual to drift from
    warm, now = learned()
    drift = Drift(now)
    run(warm, drift, now, [120] * 6)
    drift.clear()
    assert drift.decades() == 0.0 and drift.blocks == 0


def test_the_volume_finding_is_the_larger_of_the_burst_and_the_rise() -> None:
    baseline, now = learned()
    drift = Drift(now)
    run(baseline, drift, now, [40 + 3 * i for i in range(24)])
    ts = now + 24 * BLOCK_S
    five = Window(5, 110, 110, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0)  # the last 5 minutes: 110
    burst = _volume(five, baseline, ts, None)
    rise = _volume(five, baseline, ts, drift)
    assert burst is not None and rise is not None
    assert burst.weight < rise.weight == VOLUME_CAP
    assert "above its usual band for" in rise.what and "band" not in burst.what
