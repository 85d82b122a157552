"""`python -m loadtest sign`: the gateway's DKIM signing rate beside dkimpy's and OpenSSL's.

The tool never imports the gateway, so it runs `ugem dkim bench --json`
(the signer of `relay.deliver.dkim_sign` on one core with throwaway keys: bare RSA-2048
and Ed25519 signatures/s, whole messages signed/s) as a child process and,
beside it in this process, on a message of the same size:

- dkimpy's own `dkim.sign` with its default RSA-SHA256, which is dkimpy's
  pure-Python RSA (the yardstick the issue quotes), relaxed/relaxed;
- `openssl speed -mr -seconds N rsa2048 ed25519` (the machine's ceiling for
  the bare signature; it also times verification, so it takes about 4 N
  seconds), unless `--no-openssl` or there is no `openssl` on PATH.

It prints a table (or JSON with `--json`) with each rate and, for the
gateway's whole-message RSA rows, the ratio to dkimpy's (which signs whole
messages too). All rates are per CPU-second of the thread
that signs (`openssl speed`'s default), so a busy machine slows the run
down rather than the figures. Failures are `TargetError`: the `ugem` command
failing or printing no report (its stderr is quoted); an `openssl` that runs
but prints no figure is reported as not measured, not as an error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from loadtest.commands import positive
from loadtest.content import MessageFactory, SizeDist, Template
from loadtest.errors import TargetError
from loadtest.gateway import ugem_command

SELECTOR, DOMAIN = b"bench", b"bench.example"
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id"]
BENCH_TIMEOUT_FACTOR = 10  # `ugem dkim bench` runs 5 measurements; allow for start-up and slack
Row = tuple[str, str, float]  # (who, what, per second)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, more than 0, at most 600")
    return value


def add_sign(sub: Any) -> None:
    p = sub.add_parser("sign", help="DKIM signing rate: the gateway's signer, dkimpy, OpenSSL")
    p.add_argument(
        "--seconds", type=positive_seconds, default=2.0, metavar="S", help="per measurement"
    )
    p.add_argument("--size", type=positive, default=2048, metavar="BYTES", help="message size")
    p.add_argument("--no-openssl", action="store_true", help="skip `openssl speed`")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(handler=sign_command)


def sign_command(args: argparse.Namespace) -> int:
    report = measure(args.seconds, args.size, openssl=not args.no_openssl)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


def measure(seconds: float, size: int, openssl: bool = True) -> dict[str, Any]:
    """The three measurements; "openssl" is None when skipped or not measurable."""
    return {
        "ugem": ugem_bench(seconds, size),
        "dkimpy": dkimpy_rate(seconds, size),
        "openssl": openssl_speed(seconds) if openssl else None,
    }


def ugem_bench(seconds: float, size: int) -> dict[str, Any]:
    """`ugem dkim bench --json`'s report; TargetError when it fails."""
    argv = [*ugem_command(), "dkim", "bench", "--json", f"--seconds={seconds}", f"--size={size}"]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds * BENCH_TIMEOUT_FACTOR + 60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"{' '.join(argv)}: {exc}") from exc
    try:
        report: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
    except json.JSONDecodeError:
        report = {}
    if "results" not in report:
        raise TargetError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return report


def bench_text(size: int) -> bytes:
    """The loadtest generator's message of `size` bytes."""
    sender = Template.parse("bench@bench.example", "sender")
    rcpt = Template.parse("someone@example.org", "recipient")
    return MessageFactory("sign", sender, rcpt, 1, SizeDist("fixed", size)).make(0).text


def timed(op: Callable[[], object], seconds: float) -> dict[str, Any]:
    """Run `op` (once untimed) for `seconds` of this thread's CPU time, as `ugem dkim
    bench` and `openssl speed` count: count, CPU-seconds and the rate."""
    op()
    start = time.thread_time()
    count, now = 0, start
    while now - start < seconds:
        op()
        count += 1
        now = time.thread_time()
    return {"count": count, "seconds": now - start, "per_second": round(count / (now - start), 1)}


def dkimpy_rate(seconds: float, size: int) -> dict[str, Any]:
    """dkimpy's `dkim.sign` (its own pure-Python RSA-2048) on a `size`-byte message."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # dkimpy reads PKCS#1 RSAPrivateKey
        serialization.NoEncryption(),
    )
    text = bench_text(size)

    def sign() -> bytes:
        signed: bytes = dkim.sign(
            text, SELECTOR, DOMAIN, pem,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=SIGNED,
        )  # fmt: skip
        return signed

    return {"message_size": len(text), **timed(sign, seconds)}


def parse_openssl(output: str) -> dict[str, float]:
    """Signatures/s from `openssl speed -mr`: +F2:n:bits:sign:verify (RSA) and
    +F6:n:bits:name:sign:verify (EdDSA) lines."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        fields = line.strip().split(":")
        try:
            if fields[0] == "+F2" and fields[2] == "2048":
                found["rsa2048"] = float(fields[3])
            elif fields[0] == "+F6" and fields[3].lower() == "ed25519":
                found["ed25519"] = float(fields[4])
        except (IndexError, ValueError):
            continue
    return found


def openssl_speed(seconds: float) -> dict[str, float] | None:
    """`openssl speed`'s RSA-2048 and Ed25519 signatures/s; None without openssl or figures."""
    binary = shutil.which("openssl")
    if binary is None:
        return None
    argv = [binary, "speed", "-mr", "-seconds", str(max(1, round(seconds))), "rsa2048", "ed25519"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds * 8 + 60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_openssl(done.stdout) or None


def rows(report: dict[str, Any]) -> list[Row]:
    """(who, what, signatures or messages per second) for each figure of `report`."""
    out: list[Row] = []
    for r in report["ugem"]["results"]:
        unit = "bare signature" if r["what"] == "signature" else "whole message"
        out.append(("ugem (dkim_sign)", f"{r['algorithm']}, {unit}", r["per_second"]))
    out.append(("dkimpy dkim.sign", "rsa-sha256, whole message", report["dkimpy"]["per_second"]))
    for name, rate in (report.get("openssl") or {}).items():
        out.append(("openssl speed", f"{name}, bare signature", rate))
    return out


def table(report: dict[str, Any]) -> str:
    """The figures as text, whole-message RSA rows with their ratio to dkimpy's."""
    ugem = report["ugem"]
    dkimpy = report["dkimpy"]["per_second"]
    lines = [
        f"DKIM signing, one core, {ugem['message_size']}-byte message, "
        f"{ugem['seconds']} CPU-seconds each; "
        f"{ugem['cpu']}, Python {ugem['python']}, {ugem['openssl']}, "
        f"load average {ugem['load_average']}",
        f"{'':<20}{'what':<44}{'per second':>12}{'/ dkimpy':>10}",
    ]
    for who, what, rate in rows(report):
        alike = what.startswith("rsa") and what.endswith("whole message")
        ratio = f"{rate / dkimpy:.1f}x" if alike and dkimpy else ""
        lines.append(f"{who:<20}{what:<44}{rate:>12,.0f}{ratio:>10}".rstrip())
    return "\n".join(lines)
