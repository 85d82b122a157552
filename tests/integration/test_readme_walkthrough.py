"""Scenario: the README's walk-through, run as a new user runs it, and then once more.

The convention: a README block is part of the walk-through when the line
`<!-- walkthrough -->` stands right before its opening ```` ```sh ```` fence
(the comment does not show when the README is rendered). The blocks run in
README order in one bash (`set -euo pipefail`: the first command that fails
stops the run, and the test names its block), in a temporary directory
whose `.venv` is a symlink to this repository's virtualenv, so that
`.venv/bin/ugem` and `.venv/bin/python -m loadtest` resolve there while
`./var` is the temporary directory's, with no `UGEM_` variable in the
environment. Each block's output goes to a file of its own; the first
block's background jobs (the two sinks and the node, started as the README
says) keep writing to its file, so the sinks' `--show` lines are read there.
Then the whole walk-through runs again in a new bash, as a user would run it
again in a new terminal, and every block must pass again: its first block
starts nothing, the connections are there already, the token is replaced,
a new burst opens a new incident (the first was closed).

What is checked besides each block's exit status: the node was ready; both
organisations are connected, the second one through an application; the
message out and the message in arrived at the watched sink once per run; a
stranger's relay attempt was refused; the refusing sink refused ten
recipients per run and each run handled an incident of its own, named by
the id the block read; the log search found the messages delivered and
`ugem status` says the node is ready. The node's log has no traceback.
Skipped when a port the README names is in use; swaks and curl are real
peers (`tests.support.peers`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.peers import require
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARK = "<!-- walkthrough -->"
PORTS = (2525, 2526, 2527, 8025)  # the node's SMTP and admin, the two sinks
RUN_TIMEOUT = 45.0  # one whole run of the walk-through; it takes about 10 s
BLOCK_FILE = re.compile(r"block-(\d+)\.out$")


def walkthrough_blocks(text: str) -> list[str]:
    """The ```sh blocks of `text` that follow a MARK line, in order."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() != MARK:
            continue
        assert lines[i + 1].strip() == "```sh", f"line {i + 2}: {MARK} must precede a ```sh fence"
        end = lines.index("```", i + 2)
        blocks.append("\n".join(lines[i + 2 : end]))
    return blocks


def script(blocks: list[str], out: Path) -> str:
    """One bash script: each block after its output is sent to out/block-N.out."""
    parts = ["set -euo pipefail"]
    for n, block in enumerate(blocks, 1):
        parts.append(f"exec >{shlex.quote(str(out / f'block-{n}.out'))} 2>&1")
        parts.append(block)
    parts.append(f"exec >{shlex.quote(str(out / 'done'))} 2>&1")
    return "\n".join(parts) + "\n"


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Run:
    out: Path
    code: int

    def block(self, n: int) -> str:
        return (self.out / f"block-{n}.out").read_text()

    def failed_block(self) -> str:
        """Which block stopped the run, with its output."""
        done = sorted(int(m[1]) for p in self.out.iterdir() if (m := BLOCK_FILE.search(p.name)))
        last = done[-1] if done else 0
        how = f"was still running after {RUN_TIMEOUT:g} s" if self.code < 0 else "failed"
        return f"block {last} {how} (exit {self.code}):\n{self.block(last) if last else ''}"


class Walkthrough:
    """The walk-through's runs in `home`, each in a bash of its own process group."""

    def __init__(self, home: Path, blocks: list[str]) -> None:
        self.home = home
        self.blocks = blocks
        self.groups: list[int] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("UGEM_")}

    async def run(self, name: str) -> Run:
        out = self.home.parent / name
        out.mkdir()
        path = out / "walkthrough.sh"
        path.write_text(script(self.blocks, out))
        proc = await asyncio.create_subprocess_exec(
            "bash", str(path), cwd=self.home, env=self.env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.groups.append(proc.pid)
        try:
            code = await asyncio.wait_for(proc.wait(), RUN_TIMEOUT)
        except TimeoutError:
            proc.kill()  # the bash alone: the node and the sinks are stopped at the end
            await proc.wait()
            code = -1
        return Run(out, code)

    async def stop(self) -> None:
        """SIGTERM to every run's process group (the sinks and the node); SIGKILL if they
        have not let go of their ports within 20 s."""
        for group in self.groups:
            with _gone():
                os.killpg(group, signal.SIGTERM)
        try:
            await eventually(lambda: not any(map(port_in_use, PORTS)), 20, "the node stopped")
        finally:
            for group in self.groups:
                with _gone():
                    os.killpg(group, signal.SIGKILL)


class _gone:
    """Ignore ProcessLookupError: the group has ended already."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is ProcessLookupError


@pytest.fixture
async def walkthrough(tmp_path: Path) -> AsyncIterator[Walkthrough]:
    for tool in ("swaks", "curl"):
        require(tool, f"{tool} is not installed: the README's walk-through uses it")
    busy = [port for port in PORTS if port_in_use(port)]
    if busy:
        pytest.skip(f"port {busy} in use: the walk-through listens on {PORTS}")
    home = tmp_path / "clone"
    home.mkdir()
    (home / ".venv").symlink_to(REPO / ".venv")
    blocks = walkthrough_blocks(README.read_text())
    assert len(blocks) == 7, f"the README has {len(blocks)} walk-through blocks"
    w = Walkthrough(home, blocks)
    try:
        yield w
    finally:
        await w.stop()


def shown(first: Run, what: str) -> int:
    """How many --show lines of the sinks (in the first run's block 1) contain `what`."""
    return sum(what in line for line in first.block(1).splitlines())


async def test_the_readme_walkthrough_runs_top_to_bottom_twice(walkthrough: Walkthrough) -> None:
    first = await walkthrough.run("run-1")
    assert first.code == 0, first.failed_block()
    await check_run(first, first, 1)
    assert '"decided_by":"api:noc"' in first.block(3)  # connected through its application
    again = await walkthrough.run("run-2")
    assert again.code == 0, again.failed_block()
    await check_run(again, first, 2)
    assert again.block(1).startswith('{"ready":true')  # it started nothing
    assert '"decided_by"' not in again.block(3)  # connected already: no second application
    ids = [incident_id(run) for run in (first, again)]
    assert ids[0] != ids[1], ids
    log = (walkthrough.home / "var" / "ugem.log").read_text()
    assert "Traceback" not in log and '"level": "error"' not in log


async def check_run(run: Run, first: Run, n: int) -> None:
    """The key outputs of run number `n` of the walk-through, and what the sinks saw by then."""
    assert '"status":"ready"' in run.block(1)
    listed = run.block(2)
    assert re.search(r"mdai\.gov\.kz\s.*connected", listed), listed
    assert '"id":"mdai.gov.kz"' in listed and '"state":"connected"' in listed
    assert '"id":"almaty.gov.kz"' in run.block(3) and '"state":"connected"' in run.block(3)
    assert "554 5.7.1 Relay access denied" in run.block(5)
    assert "refused, as it must be" in run.block(5)
    handled = run.block(6)
    assert "gateway:blocklisted-replies" in handled and "1. mdai.gov.kz: " in handled
    assert '"state":"acknowledged"' in handled and "is closed" in handled
    logged = run.block(7)
    assert "delivered  <a.sadykova@mdai.gov.kz> -> friend@example.org" in logged
    assert "delivered  <citizen@mail.example> -> info@mdai.gov.kz" in logged
    assert re.search(r"worker 0 .*: ready", logged) and "connections  connected 2" in logged
    expected = {
        "arrived from=<a.sadykova@mdai.gov.kz> to=<friend@example.org>": n,
        "arrived from=<citizen@mail.example> to=<info@mdai.gov.kz>": n,
        "refused from=<a.sadykova@mdai.gov.kz>": 10 * n,
        "arrived from=<> to=<a.sadykova@mdai.gov.kz>": n,  # the newsletter's bounce
        "to=<d.serikbayev@almaty.gov.kz>": 1,  # the notice of its connection, once
    }
    await eventually(
        lambda: {line: shown(first, line) for line in expected} == expected,
        10,
        f"the sinks' lines {expected}",
    )


def incident_id(run: Run) -> str:
    found = re.search(r"^incident (\d+) ", run.block(6), re.MULTILINE)
    assert found, run.block(6)
    return found[1]
