"""What `sink --show` prints: one line per message (from, to, the subject as a person reads
it) and per refused recipient; and the sink process's --show and --refuse-rcpt over a socket."""

from __future__ import annotations

import asyncio
import io
import json
import smtplib
import sys
from collections.abc import AsyncIterator

import pytest

from loadtest.watch import SUBJECT_MAX, Show, path_of, subject


def test_subject_is_unfolded_and_decoded_from_the_header_section_only() -> None:
    assert subject(b"From: a\r\nSubject: Hello\r\n\r\nSubject: body\r\n") == "Hello"
    assert subject(b"SUBJECT:  folded\r\n\tacross\r\n  lines\r\nTo: b\r\n\r\n") == (
        "folded across lines"
    )
    assert subject(b"Subject: =?utf-8?b?0KHTmdC70LXQvA==?=\r\n\r\n") == "Сәлем"
    assert subject(b"Subject: =?x-unknown?q?abc?=\r\n\r\n") == "=?x-unknown?q?abc?="
    assert subject(b"To: b\r\n\r\nSubject: in the body\r\n") == ""
    assert subject(b"Subject: last line, no body") == "last line, no body"
    assert subject(b"Subject: \xff\xfe\r\n\r\n") == "\ufffd\ufffd"
    assert len(subject(b"Subject: " + b"x" * 5000 + b"\r\n\r\n")) == SUBJECT_MAX


def test_paths_of_mail_and_rcpt_lines() -> None:
    assert path_of(b"MAIL FROM:<a@x.org> SIZE=10") == b"a@x.org"
    assert path_of(b"MAIL FROM:<>") == b""
    assert path_of(b"RCPT TO: b@y.org NOTIFY=NEVER") == b"b@y.org"


def test_one_line_per_message_and_per_refusal() -> None:
    out = io.StringIO()
    show = Show(out)
    show.message(b"a@x.org", [b"b@y.org", b"c@y.org"], b'Subject: "Hi" there\r\n\r\nbody\r\n')
    show.message(b"", [b"d@z.org"], b"no header\r\n")
    show.refused(b"a@x.org", b"e@z.org", b"554 5.7.1 Blocked\r\n")
    assert out.getvalue().splitlines() == [
        'arrived from=<a@x.org> to=<b@y.org>,<c@y.org> subject="\\"Hi\\" there"',
        'arrived from=<> to=<d@z.org> subject=""',
        "refused from=<a@x.org> to=<e@z.org>: 554 5.7.1 Blocked",
    ]


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[asyncio.subprocess.Process, ...]]:
    """Two sink processes: one shows what arrives, one refuses every recipient."""
    common = [sys.executable, "-m", "loadtest", "sink", "--listen", "127.0.0.1:0", "--show"]
    refusal = ["--refuse-rcpt", "554 5.7.1 Client host blocked using zen.spamhaus.org"]
    procs = [
        await asyncio.create_subprocess_exec(*common, *extra, stdout=asyncio.subprocess.PIPE)
        for extra in ([], refusal)
    ]
    yield tuple(procs)
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().rstrip("\n")


def _send(port: int, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            return client.sendmail("a@x.org", rcpts, b"Subject: watched\r\n\r\nhello\r\n")
        except smtplib.SMTPRecipientsRefused as exc:
            return dict(exc.recipients)


async def test_the_sink_process_shows_arrivals_and_refuses_with_the_given_reply(
    sinks: tuple[asyncio.subprocess.Process, ...],
) -> None:
    shown, refusing = sinks
    ports = [int(json.loads(await _line(p))["smtp"].rsplit(":", 1)[1]) for p in sinks]
    assert await asyncio.to_thread(_send, ports[0], ["b@y.org"]) == {}
    assert await _line(shown) == 'arrived from=<a@x.org> to=<b@y.org> subject="watched"'
    refused = await asyncio.to_thread(_send, ports[1], ["c@y.org"])
    assert refused == {"c@y.org": (554, b"5.7.1 Client host blocked using zen.spamhaus.org")}
    assert await _line(refusing) == (
        "refused from=<a@x.org> to=<c@y.org>: 554 5.7.1 Client host blocked using zen.spamhaus.org"
    )


async def test_a_sink_on_a_port_in_use_exits_1_naming_it(
    sinks: tuple[asyncio.subprocess.Process, ...],
) -> None:
    taken = json.loads(await _line(sinks[0]))["smtp"]
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "sink", "--listen", taken,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(again.communicate(), 30)
    assert again.returncode == 1 and out == b""
    assert f"ugem-loadtest sink: cannot listen on {taken}: " in err.decode()
    assert b"Traceback" not in err
