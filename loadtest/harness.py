"""The comparison's two ends: which tool drives the load and which counts what arrives.

Drivers: `python` (loadtest.generator, in this process: accept latencies, an
id in every message) and `smtp-source` (Postfix's C client, loadtest.smtp_source:
no latencies, no ids, every session from 127.0.0.1). Sinks: `python` (the
`python -m loadtest sink` process: reads the ids) and `smtp-sink` (Postfix's C
server, loadtest.smtp_sink: counts messages only).

`start_sink(kind, directory)` starts one; `drive(kind, shape, port, name,
rate, log)` runs the load to its end into a `Driven` (the report, the accepted
ids or None, smtp-source's exit status or None); `arrivals(sink, driven,
stall)` waits for the accepted messages and returns the sink's stats with
the loss counted: by id when the driver sent ids and the sink reads them
(lost, duplicates), else by number (lost = accepted - arrived, unexpected =
arrived - accepted, duplicates None: not checked). `gateway_sources(kind,
sources)` are the addresses the gateway must take as the sender's servers.
`check(driver, sink, shape, rate)` refuses (UsageError) an unknown tool or a
load the driver cannot send; `require_tools(driver, sink)` finds the C tools
chosen before anything starts: a missing one is a TargetError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from loadtest import generator, smtp_source
from loadtest.errors import UsageError
from loadtest.generator import LoadShape, load_against
from loadtest.processes import SinkProcess, find_tool
from loadtest.rate import RateSchedule
from loadtest.report import Report
from loadtest.smtp_sink import SmtpSinkProcess

DRIVERS = ("python", "smtp-source")
SINKS = ("python", "smtp-sink")
SOURCE_ADDRESS = "127.0.0.1"  # smtp-source cannot bind another


class ArrivalSink(Protocol):
    """What the comparison asks of a sink process (SinkProcess, SmtpSinkProcess)."""

    @property
    def smtp(self) -> tuple[str, int]: ...
    async def drain(self, count: int, stall: float, key: str = ...) -> dict[str, Any]: ...
    async def expect(self, ids: list[str]) -> dict[str, Any]: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Driven:
    report: Report
    accepted_ids: list[str] | None  # None: the driver sends no ids
    exit_status: int | None = None  # smtp-source's; None for the Python driver


def check(driver: str, sink: str, shape: LoadShape, rate: RateSchedule | None) -> None:
    if driver not in DRIVERS:
        raise UsageError(f"unknown driver {driver!r}: one of {', '.join(DRIVERS)}")
    if sink not in SINKS:
        raise UsageError(f"unknown sink {sink!r}: one of {', '.join(SINKS)}")
    if driver == "smtp-source":
        smtp_source.check_load(shape, rate)


def require_tools(driver: str, sink: str) -> list[str]:
    """The paths of the C tools among `driver` and `sink`; TargetError naming a missing one."""
    return [find_tool(tool) for tool in (driver, sink) if tool != "python"]


def ids_checked(driver: str, sink: str) -> bool:
    """Whether loss and duplicates are counted by id (else by number, duplicates unchecked)."""
    return driver == "python" and sink == "python"


def gateway_sources(driver: str, sources: tuple[str, ...]) -> tuple[str, ...]:
    """The sender's servers as the gateway must know them: smtp-source comes from 127.0.0.1."""
    if driver == "smtp-source" and SOURCE_ADDRESS not in sources:
        return (*sources, SOURCE_ADDRESS)
    return sources


async def start_sink(kind: str, directory: Path) -> ArrivalSink:
    if kind == "smtp-sink":
        return await SmtpSinkProcess.start(directory)
    return await SinkProcess.start(directory)


async def drive(
    kind: str,
    shape: LoadShape,
    port: int,
    name: str,
    rate: RateSchedule | None,
    log: TextIO,
) -> Driven:
    if kind == "smtp-source":
        run = await smtp_source.run_source(shape, port, name)
        return Driven(run.report, None, run.exit_status)
    progress = log if log.isatty() else None
    result = await generator.run(load_against(shape, port, name, rate), progress=progress)
    return Driven(result.report, result.accepted_ids)


async def arrivals(sink: ArrivalSink, driven: Driven, by_id: bool, stall: float) -> dict[str, Any]:
    """The sink's stats once the accepted messages arrived (or none did for `stall` s)."""
    accepted = driven.report.accepted
    if by_id and driven.accepted_ids is not None:
        await sink.drain(accepted, stall, "unique_ids")
        return await sink.expect(driven.accepted_ids)
    stats = await sink.drain(accepted, stall, "messages")
    return counted_by_number(stats, accepted)


def counted_by_number(stats: dict[str, Any], accepted: int) -> dict[str, Any]:
    """Loss from the numbers alone; duplicates cannot be told from other extra messages."""
    arrived = int(stats["messages"])
    return stats | {
        "expected": accepted,
        "lost": max(0, accepted - arrived),
        "unexpected": max(0, arrived - accepted),
        "duplicates": None,
    }
