"""The contrast arithmetic of the browser tests' accessibility check (tests/support)."""

from __future__ import annotations

import pytest

from tests.support.accessibility import background, contrast, over, rgba

WHITE, BLACK = (255.0, 255.0, 255.0, 1.0), (0.0, 0.0, 0.0, 1.0)


def test_contrast_ratios_are_wcags() -> None:
    assert contrast(BLACK, WHITE) == pytest.approx(21.0)
    assert contrast(WHITE, WHITE) == pytest.approx(1.0)
    assert contrast(rgba("rgb(119, 119, 119)"), WHITE) == pytest.approx(4.48, abs=0.01)  # #777
    assert contrast(rgba("rgb(118, 118, 118)"), WHITE) >= 4.5  # #767676, the usual limit


def test_backgrounds_are_composited_from_the_root_down() -> None:
    transparent = "rgba(0, 0, 0, 0)"
    assert background([transparent, transparent]) == WHITE  # the canvas
    assert background([transparent, "rgb(18, 53, 91)"]) == (18.0, 53.0, 91.0, 1.0)
    half = background(["rgba(0, 0, 0, 0.5)", "rgb(255, 255, 255)"])
    assert half == (127.5, 127.5, 127.5, 1.0)
    assert over(rgba("rgba(255, 255, 255, 0)"), BLACK) == BLACK
