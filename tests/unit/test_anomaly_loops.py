"""anomaly.loops: a pair whose messages keep growing is a loop; sizes at random are not."""

from __future__ import annotations

import math
import random

from anomaly.loops import GAP_S, MAX_PAIRS, GrowingPairs

T = 1_795_000_000.0


def test_a_pair_growing_every_hop_is_a_run_as_long_as_the_loop() -> None:
    loops = GrowingPairs()
    for i in range(15):
        loops.note(T + 20 * i, "a@x.gov.kz", "b@gmail.com", 9000 + 350 * i)
    assert loops.run(T + 300) == 15
    assert math.isclose(loops.surprise(T + 300), math.log10(math.factorial(15)))
    assert loops.run(T + 20 * 14 + GAP_S + 1) == 0  # gone quiet: no loop now


def test_a_smaller_message_a_long_pause_or_another_pair_starts_afresh() -> None:
    loops = GrowingPairs()
    for i in range(5):
        loops.note(T + i, "a@x.gov.kz", "b@y.kz", 1000 + i)
    loops.note(T + 10, "a@x.gov.kz", "b@y.kz", 500)  # smaller: the run breaks
    loops.note(T + 11, "a@x.gov.kz", "b@y.kz", 600)
    assert loops.run(T + 11) == 5  # the run of 5 is still the longest lately
    loops.note(T + 11 + GAP_S + 1, "a@x.gov.kz", "b@y.kz", 700)  # too late: afresh
    assert loops.run(T + 11 + GAP_S + 1) == 1
    loops.note(T + 700, "c@x.gov.kz", "b@y.kz", 9000)  # another pair: a run of its own
    loops.note(T + 701, "c@x.gov.kz", "b@y.kz", 9001)
    assert loops.run(T + 701) == 2
    assert loops.run(T + 701 + GAP_S + 1) == 0


def test_alerts_of_random_sizes_to_one_address_rarely_line_up() -> None:
    rng = random.Random(7)
    loops = GrowingPairs()
    longest = 0
    for i in range(5000):  # a monitoring system's storm: an alert a minute, sizes at random
        loops.note(T + 60 * i, "monitor@x.gov.kz", "noc@x.gov.kz", int(rng.lognormvariate(8, 0.2)))
        longest = max(longest, loops.run(T + 60 * i))
    assert longest <= 7  # a run of 8 has chance 1/40320 a start
    assert loops.surprise(T + 60 * 4999) < 4.0


def test_memory_is_bounded_by_forgetting_silent_pairs() -> None:
    loops = GrowingPairs()
    for i in range(3 * MAX_PAIRS):  # a newsletter: one recipient a message, all different
        loops.note(T + i * 0.5, "news@x.gov.kz", f"s{i}@mail.kz", 20_000)
    assert len(loops._pairs) <= MAX_PAIRS
