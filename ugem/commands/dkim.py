"""`ugem dkim keygen|rotate|drop|list|check|bench`: the DKIM keys that sign outbound mail.

`keygen DOMAIN [--selector S] [--ed25519]` writes a domain's first key pair
(RSA-2048, plus Ed25519 for dual signing) into the key directory
(`ugem.core.dkim_keys`, private keys mode 0600) and prints the DNS TXT records to
publish, in zone-file form. `rotate DOMAIN [--selector S]` adds a new
generation that signs from then on and keeps the old ones, which
`drop DOMAIN SELECTOR` deletes (never the active one). `list` shows every
selector. A running node picks a new active selector up with the next message.
`check DOMAIN [--json]` prints the domain's DNS readiness (`relay.readiness`:
mx, spf, dkim, dmarc, each PASS or FAIL with the record found) and exits 0
when every finding passes, 1 otherwise. `bench [--seconds S] [--size BYTES]
[--algorithm rsa|ed25519|both] [--json]` measures the signer of
`relay.deliver.dkim_sign` on one core with throwaway keys (in a temporary directory):
signatures/s of the bare RSA-2048 and Ed25519 operations and whole messages
signed/s (parse, canonicalise, hash, sign), each run for S seconds of the
thread's CPU time (rates are per CPU-second, like `openssl speed`'s).
Errors: a bad domain or selector exits 2; a selector in use, the active one
dropped, or an unknown domain or selector exits 1 saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.backends.openssl.backend import backend as openssl

from relay.deliver.dkim_sign import DkimSigner, Prepared, rsa_signer, signature_field
from relay.readiness import readiness_from_config
from ugem.cli import add_json_flag, print_json, print_list, print_table
from ugem.commands.connection import when
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.dkim_keys import KeySet, KeyStore, SelectorInfo, dns_records, key_path
from ugem.core.names import canonical_domain

COLUMNS = ["domain", "selector", "algorithms", "active", "created"]
TXT_CHUNK = 255  # a TXT character-string holds at most 255 octets
BENCH_COLUMNS = ["what", "algorithm", "per_second", "count", "seconds"]
BENCH_RSA, BENCH_DUAL = "rsa.bench.example", "dual.bench.example"
BENCH_MAX_SECONDS = 600.0
BENCH_MAX_SIZE = 64 * 1024 * 1024
FILLER = b"Filler text of the DKIM signing benchmark's message body, one line of 76.\r\n"


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("dkim", parents=[common], help="manage DKIM signing keys")
    cmds = p.add_subparsers(dest="dkim_command", metavar="ACTION", required=True)
    keygen = cmds.add_parser("keygen", parents=[common], help="create a domain's first key pair")
    keygen.add_argument("domain", metavar="DOMAIN")
    keygen.add_argument("--selector", default="", metavar="S", help="default: s<YYYYMMDD>")
    keygen.add_argument("--ed25519", action="store_true", help="add an Ed25519 key (dual signing)")
    keygen.set_defaults(handler=keygen_cmd)
    rotate = cmds.add_parser("rotate", parents=[common], help="add a new selector that signs")
    rotate.add_argument("domain", metavar="DOMAIN")
    rotate.add_argument("--selector", default="", metavar="S", help="default: s<YYYYMMDD>")
    rotate.add_argument(
        "--ed25519",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with an Ed25519 key (default: as the selector it replaces)",
    )
    rotate.set_defaults(handler=rotate_cmd)
    drop = cmds.add_parser("drop", parents=[common], help="delete a selector no longer active")
    drop.add_argument("domain", metavar="DOMAIN")
    drop.add_argument("selector", metavar="SELECTOR")
    drop.set_defaults(handler=drop_cmd)
    lister = cmds.add_parser("list", parents=[common], help="list the selectors of every domain")
    add_json_flag(lister)
    lister.set_defaults(handler=list_cmd)
    check = cmds.add_parser(
        "check", parents=[common], help="is a domain's DNS ready: MX, SPF, DKIM, DMARC?"
    )
    check.add_argument("domain", metavar="DOMAIN")
    add_json_flag(check)
    check.set_defaults(handler=check_cmd)
    bench = cmds.add_parser(
        "bench", parents=[common], help="measure the signer on one core (throwaway keys)"
    )
    bench.add_argument(
        "--seconds", type=_seconds, default=2.0, metavar="S", help="per measurement (default 2)"
    )
    bench.add_argument(
        "--size", type=_size, default=2048, metavar="BYTES", help="message size (default 2048)"
    )
    bench.add_argument("--algorithm", choices=("rsa", "ed25519", "both"), default="both")
    add_json_flag(bench)
    bench.set_defaults(handler=bench_cmd)


def zone_lines(keys: KeySet) -> list[str]:
    """The records as zone-file lines, long values split into 255-octet strings."""
    lines = []
    for name, value in dns_records(keys):
        chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)]
        lines.append(f"{name}. IN TXT " + " ".join(f'"{c}"' for c in chunks))
    return lines


def _announce(keys: KeySet, what: str) -> None:
    print(f"{what} DKIM selector {keys.selector} of {keys.domain}; it signs from now on.")
    print("Publish in DNS:")
    for line in zone_lines(keys):
        print(line)


def keygen_cmd(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(key_path(config))
    selector = args.selector or store.free_selector(args.domain)
    _announce(store.keygen(args.domain, selector, args.ed25519), "created")
    return 0


def rotate_cmd(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(key_path(config))
    keys = store.rotate(args.domain, args.selector, args.ed25519)
    _announce(keys, "rotated to")
    print("The older selectors stay published until `ugem dkim drop DOMAIN SELECTOR`.")
    return 0


def drop_cmd(args: argparse.Namespace, config: Config) -> int:
    KeyStore(key_path(config)).drop(args.domain, args.selector)
    print(f"dropped DKIM selector {args.selector} of {args.domain}; remove its DNS record")
    return 0


def _row(info: SelectorInfo) -> dict[str, str]:
    return {
        "domain": info.domain,
        "selector": info.selector,
        "algorithms": "rsa-sha256+ed25519-sha256" if info.ed25519 else "rsa-sha256",
        "active": "yes" if info.active else "",
        "created": when(info.created),
    }


def _as_dict(info: SelectorInfo) -> dict[str, object]:
    return {
        "domain": info.domain,
        "selector": info.selector,
        "ed25519": info.ed25519,
        "active": info.active,
        "created": info.created,
    }


def list_cmd(args: argparse.Namespace, config: Config) -> int:
    rows = KeyStore(key_path(config)).selectors()
    print_list(rows, args.json, _as_dict, _row, COLUMNS)
    return 0


# -- check -------------------------------------------------------------------------------------


def check_cmd(args: argparse.Namespace, config: Config) -> int:
    findings = asyncio.run(readiness_from_config(config).check(args.domain))
    ready = all(f.ok for f in findings)
    if args.json:
        print_json(
            {
                "domain": canonical_domain(args.domain),
                "ready": ready,
                "findings": [dataclasses.asdict(f) for f in findings],
            }
        )
    else:
        for f in findings:
            print(f"{'PASS' if f.ok else 'FAIL'} {f.name}: {f.record}")
    return 0 if ready else 1


# -- bench -------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= BENCH_MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected seconds, more than 0 and at most {BENCH_MAX_SECONDS:g}"
        )
    return value


def _size(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= BENCH_MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes from 1 to {BENCH_MAX_SIZE}")
    return int(text)


@dataclasses.dataclass(frozen=True)
class Rate:
    what: str  # "signature" (the bare operation on a digest) or "message" (all of signing)
    algorithm: str
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"per_second": round(self.per_second, 1)}


def bench_message(size: int) -> bytes:
    """A plain-text message of `size` bytes (one less when that would leave a 1-byte line)."""
    head = (
        b"From: Bench <bench@bench.example>\r\nTo: someone@example.org\r\n"
        b"Subject: DKIM signing benchmark\r\nDate: Fri, 1 Jan 2027 00:00:00 +0000\r\n"
        b"Message-ID: <bench@bench.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    full, rest = divmod(max(size - len(head), 0), len(FILLER))
    return head + FILLER * full + (b"x" * (rest - 2) + b"\r\n" if rest >= 2 else b"")


def timed(what: str, algorithm: str, op: Callable[[], object], seconds: float) -> Rate:
    """Run `op` over and over in this thread for `seconds` of its CPU time; how often it ran.

    CPU time, as `openssl speed` counts by default: other load on the machine
    makes the run longer, not the rate lower. One call first, untimed: it reads
    the key and fills the caches."""
    op()
    start = time.thread_time()
    deadline, count = start + seconds, 0
    while True:
        op()
        count += 1
        now = time.thread_time()
        if now >= deadline:
            return Rate(what, algorithm, count, now - start)


Case = tuple[str, str, Callable[[], object]]


def _rsa_cases(store: KeyStore, data: bytes, digest: bytes) -> list[Case]:
    sign, signer = (
        rsa_signer(store.generate(BENCH_RSA, "bench")),
        DkimSigner(store, "", SystemClock()),
    )
    return [
        ("signature", "rsa-sha256", lambda: sign(digest)),
        ("message", "rsa-sha256", lambda: signer.sign(data, (BENCH_RSA,), BENCH_RSA)),
    ]


def _ed25519_cases(store: KeyStore, data: bytes, digest: bytes, dual: bool) -> list[Case]:
    keys = store.generate(BENCH_DUAL, "bench", with_ed25519=True)
    ed, selector, clock = keys.ed25519, keys.ed25519_selector, SystemClock()
    assert ed is not None
    alone = b"ed25519-sha256"
    cases: list[Case] = [
        ("signature", "ed25519-sha256", lambda: ed.sign(digest)),
        (
            "message",
            "ed25519-sha256",
            lambda: signature_field(
                Prepared(data), BENCH_DUAL, selector, alone, ed.sign, clock.now()
            ),
        ),
    ]
    if dual:
        signer = DkimSigner(store, "", clock)
        both = "rsa-sha256+ed25519-sha256"
        cases.append(("message", both, lambda: signer.sign(data, (BENCH_DUAL,), BENCH_DUAL)))
    return cases


def run_bench(seconds: float, size: int, algorithm: str) -> dict[str, Any]:
    """The benchmark's report: the setting, the machine and one rate per measurement."""
    data = bench_message(size)
    digest = hashlib.sha256(data).digest()
    with tempfile.TemporaryDirectory(prefix="ugem-dkim-bench-") as keydir:
        store = KeyStore(Path(keydir))
        cases = _rsa_cases(store, data, digest) if algorithm in ("rsa", "both") else []
        if algorithm in ("ed25519", "both"):
            cases += _ed25519_cases(store, data, digest, dual=algorithm == "both")
        rates = [timed(what, alg, op, seconds) for what, alg, op in cases]
    return {
        "message_size": len(data),
        "seconds": seconds,
        "python": platform.python_version(),
        "openssl": openssl.openssl_version_text(),
        "cpu": _cpu_model(),
        "load_average": round(os.getloadavg()[0], 2),
        "results": [r.as_dict() for r in rates],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def bench_cmd(args: argparse.Namespace, config: Config) -> int:
    report = run_bench(args.seconds, args.size, args.algorithm)
    if args.json:
        print_json(report)
        return 0
    print(
        f"DKIM signing on one core: {report['message_size']}-byte message, "
        f"{report['seconds']} CPU-seconds each, {report['openssl']}, {report['cpu']}"
    )
    rows = [
        r | {"per_second": f"{r['per_second']:,.0f}", "seconds": f"{r['seconds']:.2f}"}
        for r in report["results"]
    ]
    print_table(rows, BENCH_COLUMNS)
    return 0
