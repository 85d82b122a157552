"""anomaly.calibrate: the thresholds are chosen by the written rule, on the records given."""

from __future__ import annotations

from anomaly.calibrate import MARGIN, Recorded, choose, judge, normal_throttles
from anomaly.evaluate import Incident

T0 = 1_795_000_000.0
HOUR = 3600.0


def _recorded(checks: dict[str, list[tuple[float, float, float]]]) -> Recorded:
    incidents = (
        Incident("abuser.kz", "compromised-mailbox", T0, T0 + HOUR),
        Incident("quiet.kz", "phish-internal", T0, T0 + 2 * HOUR),
    )
    return Recorded(checks, incidents, connection_days=100.0)


def test_the_chosen_suspension_is_clean_with_a_margin_and_detects_most() -> None:
    rec = _recorded(
        {
            # strong abuse: caught at any threshold of the grid up to 20
            "abuser.kz": [(T0 + 30, 25.0, 10.0)],
            # quiet abuse: scores 9.5 with 4 beyond volume and novelty
            "quiet.kz": [(T0 + 600, 9.5, 4.0)],
            # a normal connection's bulk mailing: 8.2 but little corroboration
            "bulk.kz": [(T0 + 5 * HOUR, 8.2, 1.5)],
            # a normal connection with some corroboration at 7.5
            "odd.kz": [(T0 + 9 * HOUR, 7.5, 3.5)],
        }
    )
    choice = choose([rec])
    t = choice.thresholds
    assert judge([rec], t.suspend, t.corroborated)[0] == 0  # no false suspension...
    assert judge([rec], t.suspend - MARGIN, t.corroborated)[0] == 0  # ...even lower by the margin
    assert choice.detected == 2 and choice.incidents == 2  # the quiet one too
    # 9 is the highest of the grid that catches the quiet one; 8 would catch odd.kz at 7
    assert (t.suspend, t.corroborated) == (9.0, 2.0)
    assert "no false suspension" in choice.why and "2/2" in choice.why


def test_the_throttle_is_the_lowest_within_the_budget_of_normal_throttles() -> None:
    normal = {f"n{i}.kz": [(T0 + 10 * HOUR, 4.5, 0.0)] for i in range(3)}  # 3 per 100 days
    rec = _recorded({"abuser.kz": [(T0 + 30, 25.0, 10.0)], **normal})
    assert normal_throttles([rec], 4.0) == 3.0 and normal_throttles([rec], 5.0) == 0.0
    choice = choose([rec])
    assert choice.thresholds.throttle == 5.0  # 4 would throttle normal mail 3 times
    assert choice.thresholds.throttle <= choice.thresholds.suspend


def test_with_no_clean_pair_the_fewest_false_then_the_most_detected_are_taken_and_said() -> None:
    rec = _recorded(
        {
            "loud.kz": [(T0 + 20 * HOUR, 99.0, 99.0)],  # normal, yet scores 99: always false
            "abuser.kz": [(T0 + 30, 25.0, 10.0)],
        }
    )
    choice = choose([rec])
    assert choice.thresholds.suspend == 25.0 and choice.detected == 1  # still catches it
    assert "no pair of the grids was clean: 1 false suspension(s)" in choice.why
