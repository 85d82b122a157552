"""The CLI's three commands: their options and what each does with them.

- `run`: parses the specs (bad ones are argparse errors, exit 2), runs the
  generator, prints the report on stdout (text, or JSON with `--json`) and a
  progress line on stderr when stderr is a terminal (not with `--quiet`);
  `--ids-file` writes the accepted ids, one per line, for a sink's
  `--expect-file`. Exit code 1 when every message failed (no reply at all).
- `sink`: serves the sink until SIGTERM or SIGINT; prints
  {"event": "ready", "smtp": "H:P", "control": "H:P" or null} as its first
  stdout line (ports chosen when 0 was asked), with `--show` a line per
  message and per refused recipient (loadtest.watch), the stats as JSON on
  SIGUSR1 (on stderr) and at exit (on stdout). `--stats-file` is rewritten at
  each of those and every `--stats-interval` seconds; `--expect-file` (ids, one
  per line) is read again each time, so it may be written after the sink
  starts. `--refuse-rcpt REPLY` answers every RCPT with that refusal. An
  address it cannot listen on exits 1 naming it.
- `compare`: runs loadtest.compare and prints its text or JSON; SIGTERM and
  SIGINT stop it after stopping Postfix, Haraka, the gateway and the sinks.
  `--only haraka,postfix,ugem` (comma-separated or repeated) chooses the
  targets; without it, the peer named (postfix or haraka) and ugem. `--driver
  smtp-source` and `--sink smtp-sink` put Postfix's C tools at the two ends
  (a load smtp-source cannot send is a usage error, exit 2). `--repeat N` runs
  loadtest.rounds' N alternating rounds and prints medians [min-max]; `--set full`
  runs loadtest.full_set's whole set (its own loads; `--set queue` only the restart
  over `--queue-messages`), writes its JSON report to `--out` and the plots beside it.
- `idle`: loadtest.idle's idle sessions (and the target's memory with
  `--pid`); exit code 1 when no session was greeted.
- `restart`: loadtest.restart's restart over a full queue; exit code 1 when
  not every accepted message arrived. SIGTERM and SIGINT stop it after
  stopping the gateway and the sink.
- `hostile`: loadtest.hostile's hostile input (parallel large messages, a
  folded header, idle strangers); exit code 1 when a finding says the node
  missed a target. SIGTERM and SIGINT stop it after stopping the gateway and
  the sink.
- `nodes`: loadtest.nodes's one node against two on a shared Redis, and the shared
  traffic log's cost; exit code 1 when a setup lost or duplicated a message. SIGTERM and
  SIGINT stop it after stopping the nodes, the sink and redis-server.
Every command runs on uvloop when it is installed, unless `--no-uvloop`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from loadtest import (
    compare,
    full_set,
    generator,
    haraka,
    harness,
    hostile,
    idle,
    nodes,
    restart,
    rounds,
)
from loadtest.content import Template, parse_size
from loadtest.control import ControlServer
from loadtest.errors import TargetError, UsageError
from loadtest.gateway import parse_overrides
from loadtest.generator import RunOptions
from loadtest.rate import parse_rate
from loadtest.sink import DEFAULT_MAX_SIZE, SinkServer
from loadtest.spec import parse_duration, parse_hostport, parse_reply, parse_sources
from loadtest.watch import Show

T = TypeVar("T")


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser raising UsageError."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = parse.__name__
    return convert


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{text!r} is not a whole number of at least 1")
    return int(text)


positive = _checked(_positive)


def run_loop(main: Coroutine[Any, Any, T], no_uvloop: bool) -> T:
    """Run `main` on uvloop (when installed and wanted) or asyncio's loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if not no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")


# -- run ------------------------------------------------------------------------------------


def add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="send a load to an SMTP server and report")
    p.add_argument("target", type=_checked(parse_hostport), metavar="HOST:PORT")
    p.add_argument(
        "-n",
        "--messages",
        type=positive,
        help="messages to send (default 1000; no limit when --duration or a "
        "stepped --rate ends the run)",
    )
    p.add_argument(
        "-c",
        "--connections",
        type=positive,
        default=10,
        help="concurrent SMTP sessions (default 10)",
    )
    p.add_argument(
        "--per-connection",
        type=positive,
        default=100,
        help="messages per session before QUIT and a new one (default 100)",
    )
    p.add_argument("--rcpts", type=positive, default=1, help="recipients per message")
    p.add_argument(
        "--size",
        type=_checked(parse_size),
        default=parse_size("2048"),
        help="message size in bytes, or lognormal:MEAN:SIGMA, uniform:MIN:MAX",
    )
    p.add_argument("--size-dist", type=_checked(parse_size), help="same as --size")
    p.add_argument(
        "--from",
        dest="sender",
        default="load{n}@mdai.gov.kz",
        help="envelope sender template; fields {n} {r} {c} {run}",
    )
    p.add_argument(
        "--to",
        dest="recipient",
        default="user{n}.{r}@example.org",
        help="envelope recipient template; fields {n} {r} {c} {run}",
    )
    p.add_argument(
        "--source",
        type=_checked(parse_sources),
        default=(),
        help="source addresses, such as 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.9",
    )
    p.add_argument(
        "--rate",
        type=_checked(parse_rate),
        help="messages per second: 500 (steady) or 100:10s,200:10s (stepped)",
    )
    p.add_argument("--duration", type=_checked(parse_duration), help="stop after, e.g. 30s")
    p.add_argument("--helo", default="loadtest.invalid", help="name sent in EHLO")
    p.add_argument(
        "--timeout",
        type=_checked(parse_duration),
        default=60.0,
        help="time limit for one message, connecting included (default 60s)",
    )
    p.add_argument(
        "--no-pipelining",
        action="store_true",
        help="one command at a time even when the server offers PIPELINING",
    )
    p.add_argument("--run-id", help="id prefix of X-Loadtest-Id (default: time and random)")
    p.add_argument("--seed", type=int, default=0, help="seed of the size distribution")
    p.add_argument("--ids-file", type=Path, help="write the accepted ids here, one per line")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    _common(p)
    p.set_defaults(handler=run_command)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The generator's options from the parsed command line."""
    host, port = args.target
    bounded = args.duration is not None or (args.rate is not None and args.rate.seconds)
    options = RunOptions(
        host=host,
        port=port,
        messages=args.messages or (None if bounded else 1000),
        connections=args.connections,
        per_connection=args.per_connection,
        rcpts=args.rcpts,
        size=args.size_dist or args.size,
        sender=Template.parse(args.sender, "--from"),
        recipient=Template.parse(args.recipient, "--to"),
        sources=args.source,
        rate=args.rate,
        duration=args.duration,
        helo=args.helo,
        timeout=args.timeout,
        pipelining=not args.no_pipelining,
        seed=args.seed,
    )
    return options if args.run_id is None else _with_run_id(options, args.run_id)


def _with_run_id(options: RunOptions, run_id: str) -> RunOptions:
    if not run_id or any(ch.isspace() for ch in run_id):
        raise UsageError(f"bad --run-id {run_id!r}: a word without spaces")
    return replace(options, run_id=run_id)


def run_command(args: argparse.Namespace) -> int:
    options = run_options(args)
    progress = None if args.quiet or not sys.stderr.isatty() else sys.stderr
    result = run_loop(generator.run(options, progress=progress), args.no_uvloop)
    if args.ids_file is not None:
        args.ids_file.write_text("".join(f"{i}\n" for i in result.accepted_ids))
    if args.json:
        print(json.dumps(result.report.to_json(), indent=2))
    else:
        print(result.report.to_text(), end="")
    report = result.report
    return 1 if report.sent and sum(report.failed.values()) == report.sent else 0


# -- sink -----------------------------------------------------------------------------------


def add_sink(sub: Any) -> None:
    p = sub.add_parser("sink", help="a fast SMTP server that counts what arrives")
    p.add_argument(
        "--listen",
        type=_checked(parse_hostport),
        default=("127.0.0.1", 2526),
        help="SMTP address (default 127.0.0.1:2526; port 0: a free one)",
    )
    p.add_argument(
        "--control",
        type=_checked(parse_hostport),
        help="HTTP control address: GET /stats, POST /expect, POST /reset",
    )
    p.add_argument("--hostname", default="sink.loadtest.invalid", help="name in the greeting")
    p.add_argument(
        "--max-size",
        type=positive,
        default=DEFAULT_MAX_SIZE,
        help="largest message accepted, in bytes",
    )
    p.add_argument(
        "--expect-file",
        type=Path,
        help="ids that were sent, one per line (read at each stats dump)",
    )
    p.add_argument("--stats-file", type=Path, help="stats JSON written on SIGUSR1 and at exit")
    p.add_argument(
        "--stats-interval", type=_checked(parse_duration), help="also write --stats-file this often"
    )
    p.add_argument(
        "--show",
        action="store_true",
        help="print a line for each message (from, to, subject) and each refused recipient",
    )
    p.add_argument(
        "--refuse-rcpt",
        type=_checked(parse_reply),
        metavar="REPLY",
        help="answer every RCPT with this refusal, e.g. '554 5.7.1 Client host blocked'",
    )
    _common(p)
    p.set_defaults(handler=sink_command)


def sink_command(args: argparse.Namespace) -> int:
    run_loop(serve_sink(args), args.no_uvloop)
    return 0


async def serve_sink(args: argparse.Namespace) -> None:
    host, port = args.listen
    watch = Show(sys.stdout) if args.show else None
    try:
        sink = await SinkServer.start(
            host, port, args.hostname, args.max_size, rcpt_reply=args.refuse_rcpt, watch=watch
        )
    except OSError as exc:
        raise TargetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    control = await ControlServer.start(sink.arrivals, *args.control) if args.control else None
    address = f"{control.host}:{control.port}" if control else None
    print(json.dumps({"event": "ready", "smtp": f"{sink.host}:{sink.port}", "control": address}),
          flush=True)  # fmt: skip

    def dump(stream: Any = None) -> str:
        if args.expect_file is not None and args.expect_file.exists():
            sink.arrivals.expect(args.expect_file.read_text().split())
        text = json.dumps(sink.arrivals.stats())
        if args.stats_file is not None:
            args.stats_file.write_text(text + "\n")
        if stream is not None:
            print(text, file=stream, flush=True)
        return text

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump, sys.stderr)
    ticker = asyncio.create_task(_every(args.stats_interval, dump)) if args.stats_interval else None
    try:
        await stop.wait()
    finally:
        if ticker is not None:
            ticker.cancel()
        await sink.stop()
        if control is not None:
            await control.stop()
        dump(sys.stdout)


async def _every(seconds: float, action: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(seconds)
        action()


# -- compare --------------------------------------------------------------------------------


def add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="the same load through a private Postfix (or Haraka) and the gateway"
    )
    p.add_argument(
        "peer",
        nargs="?",
        choices=compare.PEERS,
        default="postfix",
        help="the MTA to compare with (measured with ugem; default postfix)",
    )
    _load_shape(p, 10_000)
    p.add_argument(
        "--only",
        action="append",
        type=_checked(compare.parse_only),
        metavar="TARGET[,TARGET...]",
        help=f"measure these (of {', '.join(compare.TARGETS)}; repeatable): "
        "default the peer and ugem",
    )
    p.add_argument("--workers", type=positive, help="passed to ugem serve --workers")
    p.add_argument(
        "--rate",
        type=_checked(parse_rate),
        help="pace the load (messages per second, as for run): latency below saturation",
    )
    p.add_argument(
        "--driver",
        choices=harness.DRIVERS,
        default="python",
        help="what sends the load: the Python generator (default) or Postfix's smtp-source "
        "(HELO, no PIPELINING, from 127.0.0.1, no latencies; a fixed --size, no --rate)",
    )
    p.add_argument(
        "--sink",
        choices=harness.SINKS,
        default="python",
        help="what counts arrivals: the Python sink (default; ids: loss and duplicates) or "
        "Postfix's smtp-sink (counts only: loss by number, duplicates not checked)",
    )
    p.add_argument(
        "--postfix-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Postfix main.cf parameter (repeatable)",
    )
    p.add_argument(
        "--haraka-set",
        action="append",
        default=[],
        metavar="FILE.ini:[SECTION.]KEY=VALUE",
        help="a setting of Haraka's config/FILE.ini (repeatable), e.g. outbound.ini:"
        "concurrency_max=100",
    )
    _repeats(p)
    _gateway_run(p)
    p.set_defaults(handler=compare_command)


def _repeats(p: argparse.ArgumentParser) -> None:
    """compare's --repeat and the whole set (loadtest.rounds, loadtest.full_set)."""
    p.add_argument(
        "--repeat",
        type=positive,
        metavar="N",
        help="N rounds, every target once a round, the order reversed every other round; "
        "medians [min-max] (default 1; with --set full: 5, the headline's rounds)",
    )
    p.add_argument(
        "--set",
        dest="full_set",
        choices=("full", "queue"),
        help="full: issue 17's whole set (headline, DKIM, two workers, tail latency, "
        "scaling, the queue) with one JSON report (--out) and PNG plots beside it; "
        "queue: only the restart over --queue-messages. The load options do not apply",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=full_set.FullOptions.out,
        help=f"with --set: the JSON report (default {full_set.FullOptions.out}); "
        "the plots go beside it",
    )
    p.add_argument(
        "--queue-messages",
        type=positive,
        default=full_set.FullOptions.queue_messages,
        metavar="N",
        help=f"with --set: messages queued for the restart (default "
        f"{full_set.FullOptions.queue_messages}; issue 17's 1000000 with --set queue)",
    )


def _load_shape(p: argparse.ArgumentParser, messages: int) -> None:
    """The load of every command that drives the gateway with the generator."""
    p.add_argument("--messages", type=positive, default=messages, help=f"default {messages}")
    p.add_argument("--connections", type=positive, default=50, help="default 50")
    p.add_argument("--per-connection", type=positive, default=100, help="default 100")
    p.add_argument(
        "--size",
        type=_checked(parse_size),
        default=parse_size("2048"),
        help="bytes or a distribution (see run --size); default 2048",
    )
    p.add_argument(
        "--source",
        "--sources",
        dest="source",
        type=_checked(parse_sources),
        default=compare.DEFAULT_SOURCES,
        help="generator source addresses (default 127.0.0.2-127.0.0.5)",
    )


def _gateway_run(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs the gateway and waits for arrivals."""
    p.add_argument(
        "--stall",
        type=_checked(parse_duration),
        default=30.0,
        help="stop waiting for arrivals after this long without one (default 30s)",
    )
    _gateway_setup(p)


def _gateway_setup(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs the gateway itself (compare, restart, hostile,
    nodes)."""
    p.add_argument(
        "--ugem-set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a gateway config setting (repeatable)",
    )
    p.add_argument("--workdir", type=Path, help="work directory (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, queues)")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    _common(p)


def compare_options(args: argparse.Namespace) -> compare.CompareOptions:
    postfix_sets: dict[str, str] = {}
    for item in args.postfix_set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"bad --postfix-set {item!r}: use name=value")
        postfix_sets[name.strip()] = value.strip()
    options = compare.CompareOptions(
        messages=args.messages,
        connections=args.connections,
        per_connection=args.per_connection,
        size=args.size,
        sources=args.source,
        only=_only(args.only, args.peer),
        workers=args.workers,
        rate=args.rate,
        stall=args.stall,
        ugem_overrides=parse_overrides(args.ugem_set),
        postfix_overrides=postfix_sets,
        haraka_overrides=haraka.parse_overrides(args.haraka_set),
        workdir=args.workdir,
        keep=args.keep,
        driver=args.driver,
        sink=args.sink,
    )
    options.check()
    return options


def _only(chosen: list[tuple[str, ...]] | None, peer: str) -> tuple[str, ...]:
    """The targets of every --only, in the comparison's order; the peer and ugem without."""
    names = {name for names in chosen or [(peer, "ugem")] for name in names}
    return tuple(name for name in compare.TARGETS if name in names)


def compare_command(args: argparse.Namespace) -> int:
    if args.full_set:
        return full_set_command(args)
    options = compare_options(args)
    if args.repeat and args.repeat > 1:
        repeated = rounds.compare_rounds(options, args.repeat)
        done = run_loop(_cancellable(repeated), args.no_uvloop)
        _report(args, rounds.render_json(done), rounds.render_text(done))
        return 0
    result = run_loop(_cancellable(compare.compare(options)), args.no_uvloop)
    _report(args, compare.render_json(result), compare.render_text(result))
    return 0


def full_set_options(args: argparse.Namespace) -> full_set.FullOptions:
    """The set's options: its own loads; the settings, work directory and stall given."""
    given = compare_options(args)
    parts = full_set.PARTS if args.full_set == "full" else ("queue",)
    return full_set.FullOptions(
        out=args.out, parts=parts, repeat=args.repeat or 5, queue_messages=args.queue_messages,
        stall=args.stall, ugem_overrides=given.ugem_overrides,
        postfix_overrides=given.postfix_overrides, haraka_overrides=given.haraka_overrides,
        workdir=args.workdir, keep=args.keep,
    )  # fmt: skip


def full_set_command(args: argparse.Namespace) -> int:
    result = run_loop(_cancellable(full_set.run_full(full_set_options(args))), args.no_uvloop)
    _report(args, result.to_json(), full_set.render_text(result))
    return 0


def _report(args: argparse.Namespace, as_json: dict[str, Any], as_text: str) -> None:
    """Print a benchmark's report: JSON with --json, else the text table."""
    print(json.dumps(as_json, indent=2) if args.json else as_text, end="\n" if args.json else "")


async def _cancellable(main: Coroutine[Any, Any, T]) -> T:
    """`main`, cancelled (so its cleanup runs) on SIGTERM; SIGINT does so already."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await main
    finally:
        with contextlib.suppress(RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


# -- idle -----------------------------------------------------------------------------------


def add_idle(sub: Any) -> None:
    p = sub.add_parser("idle", help="hold many idle SMTP sessions open; the target's memory")
    p.add_argument("target", type=_checked(parse_hostport), metavar="HOST:PORT")
    p.add_argument(
        "-c", "--connections", type=positive, default=1000, help="sessions to open (default 1000)"
    )
    p.add_argument(
        "--source",
        type=_checked(parse_sources),
        default=(),
        help="source addresses, such as 127.0.0.2-127.0.0.9 (session i uses address i mod count)",
    )
    p.add_argument("--pid", type=positive, help="the target's pid: its VmRSS (and its children's)")
    p.add_argument(
        "--hold",
        type=_checked(parse_duration),
        default=5.0,
        help="how long to hold them idle (default 5s)",
    )
    p.add_argument(
        "--concurrency", type=positive, default=100, help="connects at a time (default 100)"
    )
    p.add_argument(
        "--timeout",
        type=_checked(parse_duration),
        default=10.0,
        help="time limit for one connect and its greeting (default 10s)",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON")
    _common(p)
    p.set_defaults(handler=idle_command)


def idle_options(args: argparse.Namespace) -> idle.IdleOptions:
    host, port = args.target
    options = idle.IdleOptions(
        host, port, args.connections, args.source, args.pid, args.hold, args.concurrency,
        args.timeout,
    )  # fmt: skip
    options.check()
    return options


def idle_command(args: argparse.Namespace) -> int:
    report = run_loop(idle.hold_idle(idle_options(args)), args.no_uvloop)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_text(), end="")
    return 0 if report.greeted else 1


# -- restart --------------------------------------------------------------------------------


def add_restart(sub: Any) -> None:
    p = sub.add_parser("restart", help="restart the gateway over a full queue: time to deliver")
    _load_shape(p, 100_000)
    p.add_argument("--workers", type=positive, help="passed to ugem serve --workers")
    _gateway_run(p)
    p.set_defaults(handler=restart_command)


def restart_options(args: argparse.Namespace) -> restart.RestartOptions:
    return restart.RestartOptions(
        messages=args.messages,
        workers=args.workers,
        size=args.size,
        connections=args.connections,
        per_connection=args.per_connection,
        sources=args.source,
        stall=args.stall,
        ugem_overrides=parse_overrides(args.ugem_set),
        workdir=args.workdir,
        keep=args.keep,
    )


def restart_command(args: argparse.Namespace) -> int:
    result = run_loop(_cancellable(restart.restart(restart_options(args))), args.no_uvloop)
    _report(args, restart.render_json(result), restart.render_text(result))
    return 0 if result.complete() else 1


# -- hostile --------------------------------------------------------------------------------


def add_hostile(sub: Any) -> None:
    p = sub.add_parser(
        "hostile", help="hostile input: large messages, a folded header, idle strangers"
    )
    p.add_argument(
        "--only",
        choices=hostile.SCENARIOS,
        action="append",
        help="run this scenario (repeatable; default: big, header and idle)",
    )
    p.add_argument(
        "--senders", type=positive, default=200, help="big: concurrent senders (default 200)"
    )
    p.add_argument(
        "--size",
        type=_checked(hostile.parse_bytes),
        default=hostile.DEFAULT_SIZE,
        help=f"big: bytes per message, or with K/M (default {hostile.DEFAULT_SIZE}: "
        "25 MiB less 64 KiB)",
    )
    p.add_argument(
        "--sample-interval",
        type=_checked(parse_duration),
        default=0.05,
        help="big: how often the node's RSS is read (default 50ms)",
    )
    p.add_argument(
        "--header-size",
        type=_checked(hostile.parse_bytes),
        default=2 * hostile.MIB,
        help="header: bytes of the folded field (default 2M)",
    )
    p.add_argument(
        "--probe-interval",
        type=_checked(parse_duration),
        default=0.02,
        help="header: a banner probe this often (default 20ms)",
    )
    p.add_argument(
        "--strangers", type=positive, default=3000, help="idle: idle strangers (default 3000)"
    )
    p.add_argument(
        "--stranger-source",
        type=_checked(parse_sources),
        default=hostile.STRANGER_SOURCES,
        help="idle: the strangers' addresses (default 127.0.1.1-127.0.1.30)",
    )
    p.add_argument(
        "--server",
        default="127.0.0.2",
        help="idle: the connected server that sends while they are held (default 127.0.0.2)",
    )
    p.add_argument(
        "--hold",
        type=_checked(parse_duration),
        default=5.0,
        help="idle: how long the strangers are held (default 5s)",
    )
    p.add_argument(
        "--timeout",
        type=_checked(parse_duration),
        default=300.0,
        help="time limit of each scenario's clients (default 300s)",
    )
    p.add_argument("--workers", type=positive, help="passed to ugem serve --workers")
    _gateway_setup(p)
    p.set_defaults(handler=hostile_command)


def hostile_options(args: argparse.Namespace) -> hostile.HostileOptions:
    only = tuple(name for name in hostile.SCENARIOS if name in (args.only or hostile.SCENARIOS))
    options = hostile.HostileOptions(
        only=only,
        senders=args.senders,
        size=args.size,
        sample_interval=args.sample_interval,
        header_size=args.header_size,
        probe_interval=args.probe_interval,
        strangers=args.strangers,
        stranger_sources=args.stranger_source,
        server=args.server,
        hold=args.hold,
        timeout=args.timeout,
        workers=args.workers,
        ugem_overrides=parse_overrides(args.ugem_set),
        workdir=args.workdir,
        keep=args.keep,
    )
    options.check()
    return options


def hostile_command(args: argparse.Namespace) -> int:
    result = run_loop(_cancellable(hostile.hostile(hostile_options(args))), args.no_uvloop)
    _report(args, hostile.render_json(result), hostile.render_text(result))
    return 1 if hostile.findings(result) else 0


# -- nodes ----------------------------------------------------------------------------------


def add_nodes(sub: Any) -> None:
    p = sub.add_parser(
        "nodes", help="one node against two on a shared Redis; the shared traffic log's cost"
    )
    _load_shape(p, 10_000)
    p.add_argument(
        "--rounds",
        type=positive,
        default=3,
        help=f"rounds of the four setups, in turn (default 3, at most {nodes.MAX_ROUNDS})",
    )
    p.add_argument(
        "--redis-server",
        default="redis-server",
        metavar="PATH",
        help="the redis-server to run (default: the one on PATH)",
    )
    p.add_argument(
        "--settle",
        type=_checked(nodes.parse_settle),
        default=10.0,
        help="before each setup, wait at most this long for a quiet second (default 10s; "
        "0: no wait)",
    )
    _gateway_run(p)
    p.set_defaults(handler=nodes_command)


def nodes_options(args: argparse.Namespace) -> nodes.NodesOptions:
    options = nodes.NodesOptions(
        messages=args.messages,
        connections=args.connections,
        per_connection=args.per_connection,
        size=args.size,
        sources=args.source,
        rounds=args.rounds,
        redis_server=args.redis_server,
        stall=args.stall,
        settle=args.settle,
        ugem_overrides=parse_overrides(args.ugem_set),
        workdir=args.workdir,
        keep=args.keep,
    )
    options.check()
    return options


def nodes_command(args: argparse.Namespace) -> int:
    result = run_loop(_cancellable(nodes.nodes(nodes_options(args))), args.no_uvloop)
    _report(args, nodes.render_json(result), nodes.render_text(result))
    return 0 if result.complete() else 1
