"""The protocol's report as tables: plain text and markdown.

What: `render_text` and `render_markdown` of a `Report`: a header (method, detector
code, machine, times, cache), then for each set the traces judged, the rows per
kind, the false suspensions (findings, silence before, what the organisation was
doing then), the incidents not detected and the warnings; last, each set's totals
against the targets (`targets_table`, a miss marked ✗). The text lists every
incident not detected; the markdown leaves that list out (the rows count them).
Times are Almaty's.

Promises: the output is a function of the report alone: the same report prints the
same. Failures: none of its own; it reads only the report it is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from anomaly.protocol_design import TARGETS, Targets
from anomaly.protocol_report import Report, Row, SetReport
from ugem.core.workdays import ALMATY


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _leak(r: Row) -> str:
    return f"{r.leaked:,} of {r.leaked_of:,} ({r.leaked_pct:.2f} %)" if r.leaked_of else "-"


def _throttled_leak(r: Row) -> str:
    return f"{r.throttled_pct:.2f} %" if r.leaked_of else "-"


_KIND_HEAD = (
    "kind",
    "detected",
    "median time to detect",
    "max time to detect",
    "leaked recipients",
    "leaked, throttle applied",
    "false suspensions",
    "throttles",
    "misses",
)


def kind_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [_KIND_HEAD]
    for r in [*s.rows(), s.total()]:
        detected = f"{r.detected} of {r.incidents}" if r.incidents else "-"
        lines.append(
            (
                r.label,
                detected,
                duration(r.median_ttd),
                duration(r.max_ttd),
                _leak(r),
                _throttled_leak(r),
                str(r.false_suspensions),
                str(r.throttles),
                ", ".join(r.misses()) or "-",
            )
        )
    return lines


def false_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        (
            "trace",
            "connection",
            "when (Almaty)",
            "findings",
            "silence before",
            "normal traffic then",
        )
    ]
    for f in s.false_suspensions:
        when = dt.datetime.fromtimestamp(f.ts, ALMATY).strftime("%a %Y-%m-%d %H:%M")
        silence = f"{duration(f.silence_s)}" if f.silence_s is not None else "-"
        lines.append(
            (
                f.trace,
                f.connection,
                when,
                ", ".join(f.findings),
                silence,
                "; ".join(f.context) or "-",
            )
        )
    return lines


def trace_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        ("trace", "made by", "thresholds", "events", "detected", "false suspensions", "replay")
    ]
    for t in s.traces:
        detected = sum(i.detected for i in t.incidents)
        speed = t.events / t.replay_s if t.replay_s > 0 else 0.0
        lines.append(
            (
                t.name,
                t.spec,
                " ".join(f"{k} {v:g}" for k, v in t.settings) or "-",
                f"{t.events:,}",
                f"{detected} of {len(t.incidents)}",
                str(len(t.false_suspensions)),
                f"{t.replay_s:.1f} s ({speed:,.0f} events/s)",
            )
        )
    return lines


def undetected_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        ("trace", "kind", "connection", "start (Almaty)", "length", "leaked recipients", "why")
    ]
    for i in s.incidents:
        if not i.detected:
            when = dt.datetime.fromtimestamp(i.start, ALMATY).strftime("%a %Y-%m-%d %H:%M")
            why = "connection suspended before" if i.suspended_before else "missed"
            length = duration(i.end - i.start)
            lines.append(
                (
                    i.trace,
                    i.kind,
                    i.connection,
                    when,
                    length,
                    f"{i.leaked:,} of {i.leaked_of:,}",
                    why,
                )
            )
    return lines


def targets_table(report: Report, targets: Targets = TARGETS) -> list[tuple[str, ...]]:
    """The totals of each set against the targets; a miss is marked ✗."""

    def mark(text: str, ok: bool) -> str:
        return text if ok else f"{text} ✗"

    head = ("", "target", *(s.name for s in report.sets))
    totals = [s.total() for s in report.sets]
    lines = [head]
    lines.append(
        (
            "incidents detected",
            "all",
            *(mark(_detected(t), t.detected == t.incidents) for t in totals),
        )
    )
    lines.append(
        (
            "median time to detect",
            f"≤ {duration(targets.median_ttd_s)}",
            *(
                mark(duration(t.median_ttd), (t.median_ttd or 0) <= targets.median_ttd_s)
                for t in totals
            ),
        )
    )
    lines.append(
        (
            "max time to detect",
            f"≤ {targets.max_ttd_s / 60:g} min",
            *(mark(duration(t.max_ttd), (t.max_ttd or 0) <= targets.max_ttd_s) for t in totals),
        )
    )
    lines.append(
        (
            "false suspensions",
            str(targets.false_suspensions),
            *(
                mark(str(t.false_suspensions), t.false_suspensions <= targets.false_suspensions)
                for t in totals
            ),
        )
    )
    lines.append(
        (
            "leaked recipients",
            f"≤ {targets.leaked_pct:g} %",
            *(mark(f"{t.leaked_pct:.2f} %", t.leaked_pct <= targets.leaked_pct) for t in totals),
        )
    )
    lines.append(
        (
            "leaked, throttle applied (a model)",
            "(reported)",
            *(f"{t.throttled_pct:.2f} %" for t in totals),
        )
    )
    lines.append(("throttles", "(reported)", *(str(t.throttles) for t in totals)))
    lines.append(
        (
            f"replay speed (--jobs {report.jobs})",
            f"≥ {targets.events_per_s:,.0f} events/s",
            *(
                mark(f"{s.events_per_s:,.0f} events/s", s.events_per_s >= targets.events_per_s)
                for s in report.sets
            ),
        )
    )
    lines.append(("events replayed", "", *(f"{s.events:,}" for s in report.sets)))
    return lines


def _detected(r: Row) -> str:
    before = f" ({r.suspended_before} suspended before)" if r.suspended_before else ""
    return f"{r.detected} of {r.incidents}{before}"


def markdown_table(lines: Sequence[Sequence[str]]) -> str:
    def cells(line: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in line) + " |"

    head, *body = lines
    return "\n".join([cells(head), "|" + "---|" * len(head), *(cells(b) for b in body)])


def text_table(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _set_sections(
    s: SetReport, every_miss: bool = True
) -> list[tuple[str, list[tuple[str, ...]] | None]]:
    """(a heading or a line of text, the table under it or None) for one set; `every_miss`:
    with the table of the incidents not detected (long: the per-kind rows count them)."""
    out: list[tuple[str, list[tuple[str, ...]] | None]] = [
        (f"{s.name}: {s.title}", None),
        (f"calibration: {s.calibration}", None),
        (f"tuning traces: {_names(s.tuning)}", None),
        ("traces judged", trace_table(s)),
        ("per kind", kind_table(s)),
    ]
    if s.false_suspensions:
        out.append(("false suspensions", false_table(s)))
    if every_miss and any(not i.detected for i in s.incidents):
        out.append(("incidents not detected", undetected_table(s)))
    out += [(f"warning: {w}", None) for w in s.warnings]
    return out


def _names(names: Sequence[str]) -> str:
    """`loko-tune-a, loko-tune-b...` shortened to their common start when many."""
    if len(names) <= 4:
        return ", ".join(names) or "-"
    return f"{len(names)} traces, {names[0]} ... {names[-1]}"


def _header(report: Report) -> list[str]:
    return [
        f"{report.method} (code {report.detector}); started {report.started};"
        f" {report.machine}; --jobs {report.jobs}",
        f"simulated {report.simulate_s:.0f} s, calibrated and evaluated {report.evaluate_s:.0f} s;"
        f" cache {report.cache}",
    ]


def render_text(report: Report) -> str:
    out = [*_header(report), ""]
    for s in report.sets:
        for title, table in _set_sections(s):
            if table is None:
                out.append(title)
            else:
                out += ["", f"  {title}:", text_table(table), ""]
        out.append("")
    out += ["totals against the targets:", text_table(targets_table(report)), ""]
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    out = [*(f"{line}  " for line in _header(report)), ""]
    for s in report.sets:
        first, *rest = _set_sections(s, every_miss=False)
        out += [f"#### {first[0]}", ""]
        for title, table in rest:
            if table is None:
                out += [title, ""]
            else:
                out += [f"*{title}*", "", markdown_table(table), ""]
    out += ["#### Totals against the targets", "", markdown_table(targets_table(report)), ""]
    return "\n".join(out)
