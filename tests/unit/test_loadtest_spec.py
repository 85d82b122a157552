"""The CLI's specs: durations, addresses, source lists, refusals, and the run options built
from them."""

from __future__ import annotations

import pytest

from loadtest.__main__ import main, parser
from loadtest.commands import run_options
from loadtest.errors import UsageError
from loadtest.spec import MAX_REPLY, parse_duration, parse_hostport, parse_reply, parse_sources


def test_durations() -> None:
    assert parse_duration("10") == 10.0
    assert parse_duration("10s") == 10.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120.0
    assert parse_duration("1.5h") == 5400.0
    for bad in ("", "soon", "0", "-1s", "5d"):
        with pytest.raises(UsageError, match="duration"):
            parse_duration(bad)


def test_host_and_port() -> None:
    assert parse_hostport("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_hostport("[::1]:25") == ("::1", 25)
    for bad in ("127.0.0.1", ":25", "h:x", "h:70000"):
        with pytest.raises(UsageError, match="host:port"):
            parse_hostport(bad)


def test_sources_expand_ranges() -> None:
    assert parse_sources("127.0.0.2,127.0.0.3") == ("127.0.0.2", "127.0.0.3")
    assert parse_sources("127.0.0.2-127.0.0.4, 127.0.0.9") == (
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.9",
    )
    for bad in ("", "localhost", "127.0.0.5-127.0.0.2", "127.0.0.0-127.0.255.255"):
        with pytest.raises(UsageError, match="source"):
            parse_sources(bad)


def test_refusals_are_one_4xx_or_5xx_line() -> None:
    assert parse_reply("554 5.7.1 Blocked") == b"554 5.7.1 Blocked\r\n"
    assert parse_reply(" 451 4.7.1 Try later ") == b"451 4.7.1 Try later\r\n"
    for bad in ("", "554", "250 2.0.0 OK", "55 x", "5544 x", "abc x", "554 a\r\n250 b", "554 é"):
        with pytest.raises(UsageError, match="bad reply"):
            parse_reply(bad)
    assert len(parse_reply("554 " + "x" * (MAX_REPLY - 4))) == MAX_REPLY + 2
    with pytest.raises(UsageError, match=f"at most {MAX_REPLY}"):
        parse_reply("554 " + "x" * (MAX_REPLY - 3))


def test_run_options_default_to_1000_messages_unless_time_bounds_the_run() -> None:
    def options(*args: str) -> int | None:
        return run_options(parser().parse_args(["run", "127.0.0.1:2525", *args])).messages

    assert options() == 1000
    assert options("-n", "50") == 50
    assert options("--duration", "5s") is None
    assert options("--rate", "100:5s,200:5s") is None
    assert options("--rate", "100") == 1000  # steady and open-ended: the count bounds it


def test_run_options_carry_every_setting() -> None:
    args = parser().parse_args(
        ["run", "127.0.0.1:2525", "-c", "7", "--per-connection", "3", "--rcpts", "2",
         "--size-dist", "uniform:100:200", "--source", "127.0.0.2-127.0.0.3",
         "--no-pipelining", "--run-id", "abc", "--timeout", "5s", "--helo", "me.test"]
    )  # fmt: skip
    options = run_options(args)
    assert (options.connections, options.per_connection, options.rcpts) == (7, 3, 2)
    assert options.size.kind == "uniform"
    assert options.sources == ("127.0.0.2", "127.0.0.3")
    assert (options.pipelining, options.run_id, options.timeout) == (False, "abc", 5.0)
    assert options.helo == "me.test"


def test_bad_values_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "127.0.0.1:2525", "--to", "nobody"]) == 2
    assert "needs an @domain" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["run", "127.0.0.1:2525", "--rate", "fast"])
    assert exited.value.code == 2
    assert "bad rate 'fast'" in capsys.readouterr().err
