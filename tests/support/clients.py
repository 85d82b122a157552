"""SMTP clients for scenario tests: Python's smtplib (in a thread) and swaks.

Each helper returns what the server said, so a test asserts on replies
(compared against relay.replies constants), not on exceptions. Clients can
bind to a given loopback source address to play a given mail server.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from dataclasses import dataclass

from tests.support.peers import needs


@dataclass
class Sent:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return self.code == 250


def message(
    sender: str, rcpt: str, subject: str = "test", body: str = "Hello.\r\n", extra_headers: str = ""
) -> bytes:
    text = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n{extra_headers}\r\n{body}"
    )
    return text.encode()


def smtplib_send(
    host: str,
    port: int,
    sender: str,
    rcpts: list[str],
    data: bytes,
    source: str = "127.0.0.1",
    timeout: float = 30.0,
) -> Sent:
    """One message over one session; the reply to the first refused step, or to DATA."""
    with smtplib.SMTP(host, port, source_address=(source, 0), timeout=timeout) as client:
        client.ehlo("client.test")
        code, text = client.mail(sender)
        if code != 250:
            return Sent(code, text.decode())
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code != 250:
                return Sent(code, text.decode())
        code, text = client.data(data)
        return Sent(code, text.decode())


def have_swaks() -> bool:
    return shutil.which("swaks") is not None


needs_swaks = needs(have_swaks(), "swaks is not installed")


def swaks(
    host: str, port: int, sender: str, rcpt: str, source: str = "127.0.0.1", *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "swaks",
            "--server",
            f"{host}:{port}",
            "--local-interface",
            source,
            "--from",
            sender,
            "--to",
            rcpt,
            "--helo",
            "client.test",
            "--timeout",
            "20",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
