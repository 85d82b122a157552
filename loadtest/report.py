"""The generator's tally while it runs and its report at the end, as text and JSON.

`Tally` counts outcomes as they happen; every message handed out ends in
exactly one of: accepted (250 to the end of DATA), refused (by the reply code
that ended its transaction: the MAIL refusal, the first RCPT refusal when no
recipient was accepted, the DATA or end-of-data refusal, a greeting refusal)
or failed (no reply: connect error, timeout, connection closed), so
`sent == accepted + sum(refused) + sum(failed)` always holds.

`percentile(values, p)` is the nearest-rank percentile of sorted values
(the smallest value with at least p % of the values at or below it), None
for no values. `Latency` summarises accept latencies (end of DATA → reply)
in milliseconds. `Report` is the frozen result; `to_json()` gives plain
types only (reply codes as string keys) and `to_text()` a few aligned lines.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

JsonObject = dict[str, Any]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted `values`; p in (0, 100]."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summary in milliseconds of latencies given in seconds."""
        ms = sorted(s * 1000 for s in seconds)
        mean = sum(ms) / len(ms) if ms else None
        return cls(
            len(ms),
            percentile(ms, 50),
            percentile(ms, 90),
            percentile(ms, 99),
            ms[-1] if ms else None,
            mean,
        )

    def to_text(self) -> str:
        if not self.count:
            return "none"
        return "  ".join(
            f"{name} {value:.1f} ms"
            for name, value in (
                ("p50", self.p50),
                ("p90", self.p90),
                ("p99", self.p99),
                ("max", self.max),
            )
            if value is not None
        )


@dataclass
class Tally:
    """Outcomes counted while a run goes on."""

    sent: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    rcpt_refused: Counter[int] = field(default_factory=Counter)
    failure_examples: dict[str, str] = field(default_factory=dict)  # the first of each reason
    latencies: list[float] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    bytes_accepted: int = 0
    sessions: int = 0
    pipelining: bool | None = None

    def accept(self, msg_id: str, size: int, latency: float) -> None:
        self.sent += 1
        self.accepted += 1
        self.bytes_accepted += size
        self.latencies.append(latency)
        self.accepted_ids.append(msg_id)

    def refuse(self, code: int) -> None:
        self.sent += 1
        self.refused[code] += 1

    def fail(self, reason: str, detail: str = "") -> None:
        self.sent += 1
        self.failed[reason] += 1
        self.failure_examples.setdefault(reason, detail)


@dataclass(frozen=True)
class Report:
    target: str
    run_id: str
    connections: int
    per_connection: int
    size: str
    rate: str
    sent: int
    accepted: int
    refused: dict[int, int]
    failed: dict[str, int]
    failure_examples: dict[str, str]
    rcpt_refused: dict[int, int]
    sessions: int
    pipelining: bool | None
    bytes_accepted: int
    elapsed: float
    accept_rate: float
    latency: Latency
    started_at: float  # wall clock (time.time()) when the first message was handed out
    finished_at: float

    @classmethod
    def of(cls, tally: Tally, elapsed: float, **settings: Any) -> Report:
        return cls(
            sent=tally.sent,
            accepted=tally.accepted,
            refused=dict(sorted(tally.refused.items())),
            failed=dict(sorted(tally.failed.items())),
            failure_examples=dict(sorted(tally.failure_examples.items())),
            rcpt_refused=dict(sorted(tally.rcpt_refused.items())),
            sessions=tally.sessions,
            pipelining=tally.pipelining,
            bytes_accepted=tally.bytes_accepted,
            elapsed=elapsed,
            accept_rate=tally.accepted / elapsed if elapsed > 0 else 0.0,
            latency=Latency.of(tally.latencies),
            **settings,
        )

    def to_json(self) -> JsonObject:
        data = asdict(self)
        for key in ("refused", "rcpt_refused"):
            data[key] = {str(code): count for code, count in data[key].items()}
        data["latency_ms"] = data.pop("latency")
        return data

    def to_text(self) -> str:
        pipelining = {True: "PIPELINING", False: "no PIPELINING", None: "no session"}
        rows = [
            ("target", f"{self.target} ({pipelining[self.pipelining]}), run {self.run_id}"),
            (
                "load",
                f"{self.connections} connections, {self.per_connection} messages each, "
                f"size {self.size}, rate {self.rate}",
            ),
            (
                "messages",
                f"sent {self.sent}, accepted {self.accepted}, "
                f"refused {sum(self.refused.values())}, "
                f"failed {sum(self.failed.values())}",
            ),
            ("refused by code", _counts(self.refused)),
            ("failed by reason", _counts(self.failed)),
            *((f"  first {reason}", example) for reason, example in self.failure_examples.items()),
            ("rcpt refused", _counts(self.rcpt_refused)),
            ("sessions", str(self.sessions)),
            ("accept rate", f"{self.accept_rate:.1f} msg/s over {self.elapsed:.2f} s"),
            ("accept latency", self.latency.to_text()),
        ]
        return "\n".join(f"{name:<17}{value}" for name, value in rows if value) + "\n"


def _counts(counts: dict[int, int] | dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items())
