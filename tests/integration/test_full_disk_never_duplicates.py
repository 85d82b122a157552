"""Scenario: the data directory's disk fills while mail waits for its next hop.

Issue 10, finding 2, reproduced as the attack did it: a node on a small tmpfs,
mail queued while the next hop refuses it, then the disk filled to the last
byte and the next hop back. Before the fix every removal failed and each
message arrived again at every back-off (up to 19 copies in 60 s) while
/readyz said 200. Now each message arrives exactly once, /readyz answers 503
with the reason and new mail gets 452 4.3.1 until space is freed; then the
node is ready again and takes and delivers new mail.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from tests.support.clients import message
from tests.support.node import NodeProcess, node_relaying_to, send_mail, smtp_address
from tests.support.sink import Sink
from tests.support.small_disk import fill, small_disk
from tests.support.waiting import eventually
from ugem.core.config import Config

COUNT = 20


def readiness(node: NodeProcess) -> tuple[int, str]:
    url = f"http://{node.config.admin.listen}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, str(json.load(resp)["reason"])
    except urllib.error.HTTPError as err:
        return err.code, str(json.load(err)["reason"])
    except OSError as exc:
        return 0, str(exc)


def data_reply(config: Config, subject: str = "while full") -> int:
    """The code of the reply to one message sent from the connected server."""
    host, port = smtp_address(config)
    data = message("a@mdai.gov.kz", "x@example.org", subject)
    with smtplib.SMTP(host, port, source_address=("127.0.0.2", 0), timeout=10) as client:
        try:
            client.sendmail("a@mdai.gov.kz", ["x@example.org"], data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
    return 250


def subjects(sink: Sink) -> Counter[str]:
    got: Counter[str] = Counter()
    for msg in sink.messages:
        for line in msg.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                got[line[9:].decode()] += 1
    return got


async def test_a_full_disk_delivers_each_message_once_and_says_so(
    tmp_path: Path, sink: Sink
) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        config, path = await node_relaying_to(
            tmp_path,
            sink,
            node={"data_dir": str(disk)},
            spool={"reserve_mb": 1},
            delivery={"min_backoff": 1.0, "max_backoff": 1.0},
        )
        sink.rcpt_reply = lambda rcpt: "451 4.3.0 next hop busy"  # mail waits in the queue
        node = NodeProcess(path, config)
        node.start()
        try:
            await node.wait_ready()
            for n in range(COUNT):
                await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}")
            filler = await asyncio.to_thread(fill, disk)
            sink.rcpt_reply = lambda rcpt: None  # the next hop is back
            await sink.wait_until(lambda: len(subjects(sink)) == COUNT, 30, "every message")
            await eventually(lambda: readiness(node)[0] == 503, 10, "/readyz 503")
            assert "disk full" in readiness(node)[1]
            assert await asyncio.to_thread(data_reply, config) == 452  # new mail waits
            filler.unlink()
            await eventually(lambda: readiness(node)[0] == 200, 15, "/readyz 200 again")
            await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", "after")
            await sink.wait_until(lambda: "after" in subjects(sink), 15, "mail after recovery")
            counts = subjects(sink)
            assert all(counts[f"m{n}"] == 1 for n in range(COUNT)), counts
            assert "while full" not in counts
        finally:
            node.kill()
