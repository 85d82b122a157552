"""The gateway's mail per minute on the Overview page: in and out, charted, in the visitor's words.

`drawings(rate, words)` gives the two SVGs (`admin.ui.chart.svg`, marked safe
for the template: every text in them is escaped there) of the messages
accepted (in) and the recipients delivered (out) in each minute of the last
hour (`ugem.core.services.messages.Rate`), each titled and described in
words (the hour's total and the last minute's number), with ids of its own
("rate-in", "rate-out") so that both fit on one page. There is no learned
band for these: the band drawn is empty (zero). Pure; never raises for a
`Rate` the service gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from admin.ui.chart import svg
from admin.ui.i18n import Words
from ugem.core.services.messages import Rate

WAYS = ("in", "out")  # messages accepted, recipients delivered


def _drawing(counts: Sequence[int], way: str, words: Words) -> Markup:
    series = [float(n) for n in counts]
    summary = words(f"rate.summary.{way}", n=sum(counts), last=counts[-1])
    drawn = svg(
        series, [(0.0, 0.0)] * len(series), words(f"rate.title.{way}"), summary, f"rate-{way}"
    )
    return Markup(drawn)  # noqa: S704  # escaped in svg


def drawings(rate: Rate, words: Words) -> dict[str, Markup]:
    """The charts by way ("in", "out")."""
    return {
        "in": _drawing(rate.accepted, "in", words),
        "out": _drawing(rate.delivered, "out", words),
    }
