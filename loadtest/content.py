"""What the generator sends: message sizes, envelope templates and the message text.

- `SizeDist`: the size of message n, fixed (`2048`) or drawn from a seeded
  random generator (`lognormal:MEAN:SIGMA`, whose mean is MEAN bytes;
  `uniform:MIN:MAX`), so runs with the same seed draw the same sequence of
  sizes.
- `Template`: an envelope address with fields `{n}` (message number), `{r}`
  (recipient index in the message), `{c}` (worker, i.e. connection slot) and
  `{run}` (run id), format specs allowed (`{n:06d}`); any other field, an
  attribute or an index is refused when parsed.
- `MessageFactory`: message n's envelope and text. The text carries
  `X-Loadtest-Id: <run>-<n>` so a sink can count loss and duplicates; its
  size (headers and body, CRLF line ends, before dot-stuffing) is the drawn
  size, or just the headers when those are longer, give or take one byte for
  sizes that would leave a one-byte last line. Body lines are at most 79 bytes and
  never start with ".", so the text needs no dot-stuffing.
Bad specs raise `UsageError`.
"""

from __future__ import annotations

import functools
import math
import random
import string
from dataclasses import dataclass
from email.utils import formatdate

from loadtest.errors import UsageError

MAX_SIZE = 64 * 1024 * 1024
LINE = b"The quick brown fox jumps over the lazy dog; load test filler text, line 78.\r\n"
FIELDS = frozenset({"n", "r", "c", "run"})


@dataclass(frozen=True)
class SizeDist:
    kind: str  # fixed, lognormal, uniform
    a: float  # fixed: the size; lognormal: the mean; uniform: the minimum
    b: float = 0.0  # lognormal: sigma; uniform: the maximum

    def draw(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            size = self.a
        elif self.kind == "uniform":
            size = rng.uniform(self.a, self.b)
        else:
            size = rng.lognormvariate(math.log(self.a) - self.b**2 / 2, self.b)
        return max(0, min(MAX_SIZE, round(size)))

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g} bytes"
        return f"{self.kind}:{self.a:g}:{self.b:g}"


def parse_size(text: str) -> SizeDist:
    """`N` or `fixed:N`, `lognormal:MEAN:SIGMA`, `uniform:MIN:MAX` (bytes)."""
    kind, _, rest = text.partition(":") if ":" in text else ("fixed", "", text)
    try:
        numbers = [float(part) for part in rest.split(":")]
    except ValueError:
        numbers = []
    wanted = {"fixed": 1, "lognormal": 2, "uniform": 2}
    if wanted.get(kind) != len(numbers) or not all(0 <= x <= MAX_SIZE for x in numbers):
        raise UsageError(
            f"bad size {text!r}: use BYTES, lognormal:MEAN:SIGMA or uniform:MIN:MAX "
            f"(bytes up to {MAX_SIZE})"
        )
    dist = SizeDist(kind, *numbers)
    if (kind == "lognormal" and not (dist.a > 0 and 0 < dist.b <= 4)) or (
        kind == "uniform" and dist.a > dist.b
    ):
        raise UsageError(
            f"bad size {text!r}: lognormal needs MEAN > 0 and 0 < SIGMA <= 4, "
            "uniform needs MIN <= MAX"
        )
    return dist


@dataclass(frozen=True)
class Template:
    text: str

    @classmethod
    def parse(cls, text: str, what: str) -> Template:
        for _, field, spec, conversion in string.Formatter().parse(text):
            if field is not None and (field not in FIELDS or conversion):
                raise UsageError(
                    f"bad {what} template {text!r}: field {{{field}}} is not one of "
                    "{n} (message), {r} (recipient), {c} (connection), {run}"
                )
            if spec and "{" in spec:
                raise UsageError(f"bad {what} template {text!r}: nested fields are not allowed")
        if "@" not in text:
            raise UsageError(f"bad {what} template {text!r}: it needs an @domain")
        return cls(text)

    def uses(self, field: str) -> bool:
        return any(name == field for _, name, _, _ in string.Formatter().parse(self.text))

    def render(self, n: int, r: int = 0, c: int = 0, run: str = "") -> str:
        return self.text.format(n=n, r=r, c=c, run=run)


@dataclass(frozen=True)
class Message:
    number: int
    sender: str
    rcpts: tuple[str, ...]
    text: bytes
    msg_id: str


@functools.lru_cache(maxsize=4096)
def body(size: int) -> bytes:
    """`size` bytes of CRLF-terminated filler lines, none starting with "."."""
    if size <= 0:
        return b""
    full, rest = divmod(size, len(LINE))
    if rest == 1 and full:
        full, rest = full - 1, len(LINE) + 1
    last = b"x" * (max(rest, 2) - 2) + b"\r\n" if rest else b""
    return LINE * full + last


class MessageFactory:
    """Builds message n of a run; see the module docstring."""

    def __init__(
        self,
        run_id: str,
        sender: Template,
        recipient: Template,
        rcpts: int,
        sizes: SizeDist,
        seed: int = 0,
    ) -> None:
        if rcpts > 1 and not recipient.uses("r"):
            raise UsageError(
                f"recipient template {recipient.text!r} needs {{r}} with --rcpts {rcpts}, "
                "or every message repeats one recipient"
            )
        self.run_id = run_id
        self.sender = sender
        self.recipient = recipient
        self.rcpts = rcpts
        self.sizes = sizes
        self.rng = random.Random(seed)
        self.date = formatdate(localtime=False)

    def make(self, n: int, c: int = 0) -> Message:
        sender = self.sender.render(n, 0, c, self.run_id)
        rcpts = tuple(self.recipient.render(n, r, c, self.run_id) for r in range(self.rcpts))
        msg_id = f"{self.run_id}-{n}"
        to = ",\r\n ".join(f"<{r}>" for r in rcpts)
        head = (
            f"From: <{sender}>\r\nTo: {to}\r\n"
            f"Subject: load test {msg_id}\r\nDate: {self.date}\r\n"
            f"Message-ID: <{msg_id}@loadtest.invalid>\r\nX-Loadtest-Id: {msg_id}\r\n\r\n"
        ).encode()
        text = head + body(self.sizes.draw(self.rng) - len(head))
        return Message(n, sender, rcpts, text, msg_id)
