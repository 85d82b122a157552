"""relay.accept.listener: DATA in progress shares one memory budget; over it, 452 4.3.1.

Issue 10, finding 3: each message was held whole in memory, about 80 MB per
concurrent 24 MB message, and only max_connections x max_message_size bounded
it. Here several clients send at once into a listener whose budget holds one
message: the ones that find it spent are read to their end and told to try
later, the budget is given back after each message, and memory held in the
budget never passes its limit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from relay import replies
from tests.support.connections import plain
from tests.support.peers import require
from tests.support.smtp_harness import RawClient, accept_server, raw_client
from tests.support.waiting import eventually

INSIDER = "127.0.0.2"
CONN = plain("minfin.gov.kz", INSIDER)
MIB = 1024 * 1024
LINE = b"x" * 78 + b"\r\n"


async def start_data(client: RawClient) -> None:
    await client.session()
    assert (await client.command(b"MAIL FROM:<a@ext.org>\r\n")).code == 250
    assert (await client.command(b"RCPT TO:<clerk@minfin.gov.kz>\r\n")).code == 250
    assert (await client.command(b"DATA\r\n")).code == 354


async def test_parallel_large_messages_share_one_budget(tmp_path: Path) -> None:
    body = b"Subject: big\r\n\r\n" + LINE * (700 * 1024 // len(LINE))  # about 700 KiB
    async with accept_server(tmp_path, [CONN], max_message_size=1 * MIB, data_memory=2 * MIB) as h:
        budget = h.server.data_budget
        clients = [await RawClient.open(h.port) for _ in range(4)]
        try:
            for client in clients:
                await start_data(client)
            for client in clients:  # all four are in DATA, each 700 KiB in
                await client.send(body)
            await eventually(lambda: budget.refusals > 0, 10, "a refusal by the budget")
            peak = budget.in_use
            answers = []
            for client in clients:
                answers.append((await client.command(b".\r\n")).line)
        finally:
            for client in clients:
                await client.close()
        assert peak <= budget.limit
        accepted = [a for a in answers if a.startswith("250")]
        refused = [a for a in answers if a == str(replies.NO_MEMORY)]
        assert len(accepted) + len(refused) == 4, answers
        assert 1 <= len(accepted) <= 2 and refused, answers
        assert budget.in_use == 0  # every message gave its share back
        assert len(h.intake.messages) == len(accepted)
        async with raw_client(h.port) as client:  # room again: a new message goes through
            await start_data(client)
            assert (await client.command(body + b".\r\n")).code == 250


async def test_a_client_leaving_in_data_gives_its_share_back(tmp_path: Path) -> None:
    async with accept_server(tmp_path, [CONN], max_message_size=1 * MIB, data_memory=2 * MIB) as h:
        budget = h.server.data_budget
        client = await RawClient.open(h.port)
        await start_data(client)
        await client.send(b"Subject: gone\r\n\r\n" + LINE * 5000)
        await eventually(lambda: budget.in_use > 0, 10, "DATA buffered")
        await client.close()
        await eventually(lambda: budget.in_use == 0, 10, "the share given back")


async def test_the_listen_queue_holds_a_burst_of_connects(tmp_path: Path) -> None:
    """The kernel's accept queue is [smtp] listen_backlog, not asyncio's default of 100.

    With 100, 400 clients connecting at once left dozens waiting for a banner for ever
    (TcpExtListenOverflows rose; found by `python -m loadtest hostile`). `ss` shows a
    listening socket's backlog as its Send-Q.
    """
    ss = require("ss", "ss (iproute2) is not installed")
    async with accept_server(tmp_path, [CONN], listen_backlog=700) as h:
        out = subprocess.run(
            [ss, "-ltnH", f"sport = :{h.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(out[2]) == min(700, somaxconn), out
