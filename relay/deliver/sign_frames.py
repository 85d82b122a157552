"""The frames between a worker and its DKIM signing process (`relay.deliver.sign_child`).

The process first writes `READY`. Each request is `REQUEST` (id, the worker's
clock's now, the lengths of meta and data) followed by meta (the envelope
sender's domain and the connection's domains, newline-separated, the sender's
first, empty if none) and the message. Each reply is `REPLY` (id, 1 for signed
or 0 for refused, payload length) followed by the DKIM-Signature fields to
prepend (b"" when no domain has a key) or the reason it was refused. Pure
functions of bytes; `decode_meta` raises UnicodeDecodeError on meta that is not
UTF-8 (the worker never sends such).
"""

from __future__ import annotations

import struct

READY = b"UGEM-SIGNER 1\n"
REQUEST = struct.Struct(">IdII")  # id, now (epoch seconds), meta length, data length
REPLY = struct.Struct(">IBI")  # id, signed (1) or refused (0), payload length


def encode_request(
    rid: int, now: float, data: bytes, domains: tuple[str, ...], sender: str
) -> bytes:
    """One request frame, the message included."""
    meta = "\n".join((sender, *domains)).encode("utf-8")
    return REQUEST.pack(rid, now, len(meta), len(data)) + meta + data


def decode_meta(meta: bytes) -> tuple[str | None, tuple[str, ...]]:
    """(the envelope sender's domain or None, the connection's domains) of a request."""
    sender, *domains = meta.decode("utf-8").split("\n")
    return sender or None, tuple(domains)
