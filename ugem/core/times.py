"""Times as operators read and write them: RFC 3339 in Asia/Almaty, with the offset.

The one place that turns a moment (Unix time, a float) into text and back, for
the admin API's schemas and the CLI alike. `rfc3339(ts)` gives
`2026-12-07T15:04:05+05:00` (whole seconds; `precise=True` keeps microseconds,
for machines); `local_date(ts)` the Almaty date of a moment; `unix_time(at)` a
`datetime` as Unix time, a time without a zone being Almaty time; `parse(text)`
reads RFC 3339 / ISO 8601 (an offset is honoured, none means Almaty) or a Unix
time in seconds; `json_times(data)` writes the moments of free-form JSON (the
numbers under the keys of `TIME_KEYS`: an audit record's before and after, the
CLI's `--json`) as `rfc3339`. Pure functions; `parse` raises `ValueError` naming what it
takes, the others never raise for a finite time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

ALMATY = ZoneInfo("Asia/Almaty")
EXAMPLE = "2026-12-07T15:04:05+05:00"
WRITTEN = "RFC 3339 in Asia/Almaty time with its offset, e.g. " + EXAMPLE
READ = (
    "RFC 3339 / ISO 8601 (e.g. 2026-12-07T15:04:05+05:00; an offset is honoured, a time "
    "without one is Asia/Almaty time) or Unix time in seconds"
)


def almaty(ts: float) -> dt.datetime:
    """The moment `ts` on Almaty's clock, with its offset."""
    return dt.datetime.fromtimestamp(ts, ALMATY)


def rfc3339(ts: float, precise: bool = False) -> str:
    """Unix time as RFC 3339 in Asia/Almaty, e.g. 2026-12-07T15:04:05+05:00."""
    return almaty(ts).isoformat(timespec="microseconds" if precise else "seconds")


def local_date(ts: float) -> dt.date:
    """The Asia/Almaty date of a Unix timestamp."""
    return almaty(ts).date()


def unix_time(at: dt.datetime) -> float:
    """`at` as Unix time; a time without a zone is Asia/Almaty time."""
    return (at if at.tzinfo else at.replace(tzinfo=ALMATY)).timestamp()


def parse(text: str) -> float:
    """RFC 3339 / ISO 8601 (no offset: Almaty) or Unix seconds, as Unix time."""
    value = text.strip()
    with contextlib.suppress(ValueError):
        number = float(value)
        if math.isfinite(number):
            return number
    try:
        return unix_time(dt.datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; expected {READ}") from None


# The keys whose numbers are moments (Unix time) in the services' records as JSON.
TIME_KEYS = frozenset(
    {
        "at", "ts", "since", "last_check", "checked_at", "next_attempt",
        *("created_at", "state_changed_at", "scheduled_at", "received_at", "decided_at"),
        *("opened_at", "last_verdict_at", "acknowledged_at", "closed_at", "revoked_at"),
        *("starts_at", "ends_at", "cancelled_at", "started_at", "updated_at", "read_at"),
    }
)  # fmt: skip


def json_times(data: Any) -> Any:
    """`data` with every number under a key of `TIME_KEYS`, at any depth, as RFC 3339 in
    Asia/Almaty; 0 (never, or due now) as null."""
    if isinstance(data, dict):
        return {k: _time(v) if k in TIME_KEYS else json_times(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_times(v) for v in data]
    return data


def _time(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json_times(value)
    return rfc3339(value) if value else None
