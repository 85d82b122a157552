"""Times in Asia/Almaty with the zone shown; durations in the visitor's words."""

from __future__ import annotations

from admin.ui.i18n import Catalogues
from admin.ui.render import age, when


def test_a_moment_is_almaty_time_with_its_zone() -> None:
    assert when(1_767_225_600.0) == "2026-01-01 05:00:00 +05:00 Asia/Almaty"  # 00:00 UTC
    assert when(0) == "—"


def test_a_duration_is_its_two_largest_units() -> None:
    en, kk = Catalogues.load().words("en"), Catalogues.load().words("kk")
    assert age(0, en) == "0 s"
    assert age(59, en) == "59 s"
    assert age(3 * 3600 + 12 * 60 + 5, en) == "3 h 12 min"
    assert age(2 * 86400 + 5, en) == "2 d 5 s"
    assert age(3600, kk) == "1 сағ"
