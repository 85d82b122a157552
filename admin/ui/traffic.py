"""A connection's traffic on its page: the chart of the last day or week, in the visitor's words.

`span_of(text)` is the span a page asks for ("day" unless "week").
`drawing(traffic, words)` is the SVG (`admin.ui.chart.svg`, the server's own,
marked safe for the template: every text in it is escaped there) of the
recipients per hour over the band of what the detector learned is usual for
those hours (`ugem.core.services.traffic`), titled and described in words
(the total, the last hour against its usual); None when there is nothing to
draw (the detector is off, has not seen the connection, or gave no hours),
which the page then says in words. Pure.
"""

from __future__ import annotations

from markupsafe import Markup

from admin.ui.chart import svg
from admin.ui.i18n import Words
from ugem.core.services.traffic import SPANS, Status, Traffic


def span_of(text: str) -> str:
    return text if text in SPANS else "day"


def summary(traffic: Traffic, words: Words) -> str:
    last = traffic.hours[-1]
    said = words(f"traffic.total.{traffic.span}", n=traffic.total)
    if last.usual is None:
        return f"{said} {words('traffic.last_cold', n=last.count)}"
    low, high = last.band
    return f"{said} {words('traffic.last', n=last.count, low=round(low), high=round(high))}"


def drawing(traffic: Traffic, words: Words) -> Markup | None:
    if traffic.status != Status.KNOWN or not traffic.hours:
        return None
    series = [float(h.count) for h in traffic.hours]
    band = [h.band for h in traffic.hours]
    title = words(f"traffic.title.{traffic.span}")
    return Markup(svg(series, band, title, summary(traffic, words)))  # noqa: S704  # escaped in svg
