"""The DKIM signing process: signs the messages its worker sends it, one after another.

A worker starts it (`relay.deliver.sign_process`) as `python -m
relay.deliver.sign_child KEY_DIR [GATEWAY_DOMAIN]` so that dkimpy's Python steps
(header canonicalization, body hash, folding) run on a core of their own instead
of taking turns with the worker's event loop for the GIL. It signs with the same
`DkimSigner` as the worker's thread would, over the same key directory.

The frames it reads and writes are `relay.deliver.sign_frames`'.

Promises: replies in the order of the requests; a message it cannot sign gets a
refusal, never a lost reply; it exits at the end of its input (its worker closed
the pipe or died) or when the pipe to its worker breaks. It ignores SIGINT: a
Ctrl-C to `ugem serve` reaches the whole process group, and the worker closes
the pipe when it stops.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO

from relay.deliver.dkim_sign import KEY_RECHECK_S, DkimSigner
from relay.deliver.sign_frames import READY, REPLY, REQUEST, decode_meta
from ugem.core.dkim_keys import KeyStore


class RequestClock:
    """The clock of one request: the worker's `now` (for t=), this process's monotonic."""

    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


def read_exact(inp: BinaryIO, size: int) -> bytes | None:
    """`size` bytes of `inp`, or None at its end."""
    data = inp.read(size)
    return data if len(data) == size else None


def answer(signer: DkimSigner, meta: bytes, data: bytes) -> tuple[int, bytes]:
    """(1, the fields) or (0, why not) for one request."""
    sender, domains = decode_meta(meta)
    try:
        return 1, signer.sign(data, domains, sender)
    except Exception as exc:  # every refusal is an answer: the worker queues it unsigned
        return 0, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")


def serve(inp: BinaryIO, out: BinaryIO, signer: DkimSigner, clock: RequestClock) -> None:
    """Answer requests from `inp` on `out` until `inp` ends."""
    out.write(READY)
    out.flush()
    while (head := read_exact(inp, REQUEST.size)) is not None:
        rid, clock.at, meta_len, data_len = REQUEST.unpack(head)
        meta, data = read_exact(inp, meta_len), read_exact(inp, data_len)
        if meta is None or data is None:
            return
        ok, payload = answer(signer, meta, data)
        out.write(REPLY.pack(rid, ok, len(payload)) + payload)
        out.flush()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) not in (1, 2):
        print("usage: python -m relay.deliver.sign_child KEY_DIR [GATEWAY_DOMAIN]", file=sys.stderr)
        return 2
    clock = RequestClock()
    keys = KeyStore(Path(argv[0]), clock, KEY_RECHECK_S)
    signer = DkimSigner(keys, argv[1] if len(argv) > 1 else "", clock)
    with contextlib.suppress(BrokenPipeError):  # the worker is gone
        serve(sys.stdin.buffer, sys.stdout.buffer, signer, clock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
