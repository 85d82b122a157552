"""The admin API's time fields: Unix time inside, RFC 3339 in Asia/Almaty on the wire.

`Time` is a moment an output model holds as Unix time (the services' float)
and writes as `ugem.core.times.rfc3339` (2026-12-07T15:04:05+05:00), documented
as a date-time string; `MaybeTime` the same where 0 means "none" (never
revoked, not decided, due now), written as null. They change only the JSON
(`model_dump()` in Python still gives the float). `TIME_IN` is the description of
an input time (RFC 3339 with its offset honoured, Asia/Almaty without one, or
Unix time), read by pydantic as a `datetime` and by `ugem.core.times.unix_time`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

from ugem.core import times

TIME_IN = f"a time: {times.READ}"
_STRING = {"type": "string", "format": "date-time", "examples": [times.EXAMPLE]}


def _maybe(ts: float) -> str | None:
    return times.rfc3339(ts) if ts else None


Time = Annotated[
    float,
    PlainSerializer(times.rfc3339, return_type=str, when_used="json"),
    WithJsonSchema(_STRING | {"description": times.WRITTEN}),
]
MaybeTime = Annotated[
    float,
    PlainSerializer(_maybe, return_type=str | None, when_used="json"),
    WithJsonSchema({"anyOf": [_STRING, {"type": "null"}], "description": times.WRITTEN}),
]
