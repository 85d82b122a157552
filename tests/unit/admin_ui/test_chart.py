"""The traffic chart: a series over its baseline band as accessible, escaped SVG."""

from __future__ import annotations

import math
import re

import pytest

from admin.ui.chart import HEIGHT, PAD, WIDTH, svg


def points(drawing: str, element: str) -> list[tuple[float, float]]:
    found = re.search(rf'<{element} class="[^"]+" points="([^"]+)"', drawing)
    assert found is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in found.group(1).split())]


def test_the_series_and_the_band_are_drawn_on_one_scale() -> None:
    drawing = svg([0, 5, 10], [(1, 4), (1, 4), (2, 5)], "Traffic", "10 messages")
    line = points(drawing, "polyline")
    assert [x for x, _ in line] == [PAD, WIDTH / 2, WIDTH - PAD]
    assert line[0][1] == HEIGHT - PAD  # 0 at the bottom
    assert line[2][1] == PAD  # the highest value at the top
    band = points(drawing, "polygon")
    assert len(band) == 6  # the upper edge, then the lower edge back
    assert band[2][0] == WIDTH - PAD
    assert band[2][1] == pytest.approx(PAD + (HEIGHT - 2 * PAD) / 2)  # 5 of 10


def test_the_band_may_set_the_scale() -> None:
    line = points(svg([1, 1], [(0, 4), (0, 4)], "t", "d"), "polyline")
    assert line[0][1] == pytest.approx(PAD + (HEIGHT - 2 * PAD) * 3 / 4)


def test_it_is_an_image_with_a_title_and_a_description_escaped() -> None:
    drawing = svg([1], [(0, 2)], "<script>x</script>", 'a "b" & c')
    assert 'role="img"' in drawing and 'aria-labelledby="chart-title chart-desc"' in drawing
    assert '<title id="chart-title">&lt;script&gt;x&lt;/script&gt;</title>' in drawing
    assert "a &quot;b&quot; &amp; c" in drawing
    assert "style" not in drawing  # the CSP allows no inline style


@pytest.mark.parametrize(
    ("series", "band", "named"),
    [
        ([], [], "series: empty"),
        ([1, 2], [(0, 1)], "band: 1 buckets for 2 values"),
        ([-1], [(0, 1)], "-1"),
        ([math.nan], [(0, 1)], "nan"),
        ([1], [(0, math.inf)], "inf"),
    ],
)
def test_bad_input_is_named(
    series: list[float], band: list[tuple[float, float]], named: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        svg(series, band, "t", "d")


def test_a_name_gives_the_ids_of_its_own() -> None:
    drawing = svg([1], [(0, 2)], "In", "d", name="rate-in")
    assert 'aria-labelledby="rate-in-title rate-in-desc"' in drawing
    assert '<title id="rate-in-title">In</title><desc id="rate-in-desc">d</desc>' in drawing
