"""Perl's Mail::DKIM as an independent DKIM verifier, its key records from a private dnsmasq.

`mail_dkim_verify(message, dns)` runs `mail_dkim_verify.pl` (Debian's
libmail-dkim-perl; Debian 12's 1.20230212 knows RSA only, so it reports an
Ed25519 signature as "invalid", unsupported key type) on the message, its
resolver pointed at `dns` (a `tests.support.dnsmasq.DnsServer`) and nothing
else, and returns one `Verdict` per signature plus the overall result
("pass", "fail", "none", ...). `needs_mail_dkim` skips a test, with the
reason, where the Perl modules are missing (tests/install-system-deps.sh
installs them; under UGEM_TEST_REQUIRE_PEERS=1 the test fails instead).
`key_dir(...)` makes a key directory for a test node.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.dnsmasq import DnsServer
from tests.support.peers import needs
from ugem.core.dkim_keys import KeyStore, dns_records

SCRIPT = Path(__file__).with_name("mail_dkim_verify.pl")
MODULES = ("Mail::DKIM::Verifier", "Net::DNS::Resolver")
TIMEOUT = 30.0


def have_mail_dkim() -> bool:
    perl = shutil.which("perl")
    if perl is None:
        return False
    loads = [f"-M{m}" for m in MODULES]
    return subprocess.run([perl, *loads, "-e1"], capture_output=True, check=False).returncode == 0


needs_mail_dkim = needs(
    have_mail_dkim(), "Perl Mail::DKIM missing (apt-get install libmail-dkim-perl)"
)


@dataclass(frozen=True)
class Verdict:
    result: str  # pass, fail, invalid, temperror, ...
    domain: str
    selector: str
    algorithm: str
    detail: str


def mail_dkim_verify(message: bytes, dns: DnsServer) -> tuple[list[Verdict], str]:
    """(a verdict per signature, the overall result) as Mail::DKIM sees them."""
    done = subprocess.run(
        ["perl", str(SCRIPT), dns.host, str(dns.port)],
        input=message,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    out = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, f"Mail::DKIM verifier failed: {done.stderr.decode()}"
    verdicts, overall = [], ""
    for line in out.splitlines():
        if line.startswith("overall "):
            overall = line.split(" ", 1)[1]
            continue
        result, domain, selector, algorithm, detail = [*line.split(" ", 4), ""][:5]
        verdicts.append(Verdict(result, domain[2:], selector[2:], algorithm[2:], detail.strip()))
    return verdicts, overall


def key_dir(
    root: Path, domain: str, selector: str, with_ed25519: bool, broken: bool = False
) -> tuple[KeyStore, dict[str, str]]:
    """A key directory with `domain`'s first generation, and its DNS records (name -> TXT).

    `broken`: the RSA key file is then overwritten with garbage, so signing fails.
    """
    keys = KeyStore(root)
    made = keys.keygen(domain, selector, with_ed25519=with_ed25519)
    if broken:
        (keys.root / domain / f"{selector}.rsa.pem").write_text("not a key")
    return keys, dict(dns_records(made))
