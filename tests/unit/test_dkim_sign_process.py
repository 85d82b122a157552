"""DKIM signing in processes beside the loop (`relay.deliver.sign_process`, `sign_child`).

Real signing processes over real pipes. What a process signs must be the very
bytes the worker's own signer makes for the same clock (RSA PKCS#1 v1.5 and
Ed25519 are deterministic), and must verify. Its failures: a refused message
is queued unsigned and the process goes on; a process killed with SIGKILL
fails what it held (unsigned, logged) and is started again after its delay
of the injected clock, the mail meanwhile signed in a thread; a process that
hangs is killed once its oldest request is older than the timeout of the
injected clock; a process that cannot start leaves the mail signed in a
thread; `stop` ends every process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import dkim
import pytest

from relay.deliver.dkim_sign import DkimSigner, start_processes
from relay.deliver.sign_frames import READY, decode_meta, encode_request
from relay.deliver.sign_process import (
    RESTART_DELAY,
    SignerUnavailable,
    SigningProcesses,
    child_command,
)
from ugem.core.clock import FakeClock
from ugem.core.config import Config, load_config
from ugem.core.dkim_keys import KeyStore, dns_records
from ugem.core.errors import SigningError

DOMAIN = "mdai.gov.kz"
MESSAGE = (
    b"Received: from client.test ([127.0.0.2]) by gw.test; Fri, 1 Jan 2027 00:00:00 +0000\r\n"
    b"From: a@mdai.gov.kz\r\nTo: x@example.org\r\nSubject: Report\r\n"
    b"Message-ID: <1@mdai.gov.kz>\r\n\r\nHello,\r\n  the  report.\r\n"
)
# A stand-in process that says READY and then reads requests without ever answering.
SILENT = [
    sys.executable,
    "-c",
    f"import sys; sys.stdout.buffer.write({READY!r}); sys.stdout.flush(); sys.stdin.read()",
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("dkim"))
    store.keygen(DOMAIN, "s1", with_ed25519=True)
    return store


def processes(
    keys: KeyStore, clock: FakeClock, command: list[str] | None = None
) -> SigningProcesses:
    return SigningProcesses(1, command or child_command(str(keys.root), ""), clock, 30.0)


def fields_of(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, object]]:
    return [r.__dict__["fields"] for r in caplog.records if r.getMessage() == name]


def verifies(data: bytes, keys: KeyStore) -> bool:
    active = keys.active(DOMAIN)
    assert active is not None
    txt = dict(dns_records(active))
    lookup = lambda name, timeout=5: txt[name.decode().rstrip(".")].encode()  # noqa: E731
    return bool(dkim.DKIM(data).verify(1, dnsfunc=lookup))


def test_frames_carry_the_envelope_domains() -> None:
    frame = encode_request(7, 1.5, b"data", ("a.kz", "b.kz"), "")
    assert frame.endswith(b"\na.kz\nb.kz" + b"data")
    assert decode_meta(b"s.kz\na.kz") == ("s.kz", ("a.kz",))
    assert decode_meta(b"") == (None, ())


async def test_a_process_signs_the_same_bytes_as_the_worker_would(keys: KeyStore) -> None:
    clock = FakeClock()
    pool = processes(keys, clock)
    await pool.start()
    try:
        assert pool.ready() == 1
        fields = await pool.sign(MESSAGE, (DOMAIN,), DOMAIN)
        assert fields == DkimSigner(keys, "", clock).sign(MESSAGE, (DOMAIN,), DOMAIN)
        assert fields.count(b"DKIM-Signature:") == 2
        assert verifies(fields + MESSAGE, keys)
        many = await asyncio.gather(*(pool.sign(MESSAGE, (DOMAIN,), DOMAIN) for _ in range(50)))
        assert set(many) == {fields}
    finally:
        await pool.stop()


async def test_a_refused_message_fails_alone_and_the_process_goes_on(keys: KeyStore) -> None:
    pool = processes(keys, FakeClock())
    await pool.start()
    try:
        with pytest.raises(SigningError, match="cannot be parsed"):
            await pool.sign(b"garbage without a header", (DOMAIN,), DOMAIN)
        assert await pool.sign(MESSAGE, ("other.kz",), "other.kz") == b""  # no key: no fields
        assert verifies(await pool.sign(MESSAGE, (DOMAIN,), DOMAIN) + MESSAGE, keys)
    finally:
        await pool.stop()


async def test_a_killed_process_fails_its_requests_and_restarts_after_its_delay(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    pool = processes(keys, clock)
    await pool.start()
    child = pool.children[0]
    try:
        assert child.proc is not None
        child.proc.send_signal(signal.SIGSTOP)  # it cannot answer before it dies
        waiting = asyncio.ensure_future(pool.sign(MESSAGE, (DOMAIN,), DOMAIN))
        await asyncio.sleep(0)  # the request is written
        child.proc.send_signal(signal.SIGKILL)
        with pytest.raises(SigningError, match="exited"):
            await waiting
        assert "dkim_signer_lost" in caplog.text
        with pytest.raises(SignerUnavailable):  # too early to start it again
            await pool.sign(MESSAGE, (DOMAIN,), DOMAIN)
        assert child.starting is None
        clock.advance(RESTART_DELAY + 0.1)
        with pytest.raises(SignerUnavailable):  # this one goes to a thread; the start begins
            await pool.sign(MESSAGE, (DOMAIN,), DOMAIN)
        assert child.starting is not None
        await child.starting
        assert verifies(await pool.sign(MESSAGE, (DOMAIN,), DOMAIN) + MESSAGE, keys)
    finally:
        await pool.stop()


async def test_a_hung_process_is_killed_past_its_timeout(keys: KeyStore) -> None:
    clock = FakeClock()
    pool = processes(keys, clock, SILENT)
    await pool.start()
    proc = pool.children[0].proc
    assert proc is not None
    try:
        waiting = asyncio.ensure_future(pool.sign(MESSAGE, (DOMAIN,), DOMAIN))
        await asyncio.sleep(0)
        pool.check_hung()
        assert not waiting.done()
        clock.advance(30.1)
        pool.check_hung()
        with pytest.raises(SigningError, match="no reply in 30 s"):
            await waiting
        assert await proc.wait() == -signal.SIGKILL
        assert pool.ready() == 0
    finally:
        await pool.stop()


async def test_mail_is_signed_in_a_thread_while_no_process_can_start(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    signer = DkimSigner(keys, "", clock)
    signer.processes = processes(keys, clock, [sys.executable, "-c", "pass"])
    await signer.processes.start()
    assert "dkim_signer_start_failed" in caplog.text
    with caplog.at_level(logging.DEBUG, logger="relay.deliver.dkim_sign"):
        data = await signer.outgoing_async(MESSAGE, (DOMAIN,), DOMAIN, "Q1")
    assert verifies(data, keys)
    assert [f["via"] for f in fields_of(caplog, "dkim_signed")] == ["thread"]
    await signer.processes.stop()


async def test_a_refusal_queues_the_message_unsigned_with_its_queue_id(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    signer = DkimSigner(keys, "", clock)
    signer.processes = processes(keys, clock)
    await signer.processes.start()
    try:
        broken = b"From: a@mdai.gov.kz\r\nbroken header line\r\n\r\nbody\r\n"
        assert await signer.outgoing_async(broken, (DOMAIN,), DOMAIN, "Q2") == broken
        assert [f["queue_id"] for f in fields_of(caplog, "dkim_sign_failed")] == ["Q2"]
        with caplog.at_level(logging.DEBUG, logger="relay.deliver.dkim_sign"):
            assert verifies(await signer.outgoing_async(MESSAGE, (DOMAIN,), DOMAIN, "Q3"), keys)
        assert [f["via"] for f in fields_of(caplog, "dkim_signed")] == ["process"]
    finally:
        await signer.processes.stop()


async def test_processes_start_with_the_node_only_when_a_key_is_there(
    keys: KeyStore, tmp_path: Path
) -> None:
    def config(key_dir: Path, count: int = 1) -> Config:
        env = {"UGEM_DKIM_KEY_DIR": str(key_dir), "UGEM_DKIM_SIGN_PROCESSES": str(count)}
        return load_config(None, env=env)

    clock = FakeClock()
    empty = DkimSigner(KeyStore(tmp_path / "none"), "", clock)
    none_yet = await start_processes(empty, config(tmp_path / "none"))
    assert none_yet is not None and none_yet.ready() == 0
    signer = DkimSigner(keys, "", clock)
    started = await start_processes(signer, config(keys.root, 2))
    assert started is not None and started.ready() == 2 and signer.processes is started
    running = [c.proc for c in started.children]
    await started.stop()
    assert all(p is not None and p.returncode is not None for p in running)
    off = DkimSigner(keys, "", clock)
    assert await start_processes(off, config(keys.root, 0)) is None
    assert off.processes is None
