"""The fields of a form the console posted (application/x-www-form-urlencoded).

`read_form(request)` parses the body (already capped by `admin.body_limit`)
with the standard library, at most `MAX_FIELDS` fields, the last value of a
repeated name winning; each value is stripped of surrounding blanks and cut
to `MAX_VALUE` characters. Another content type, or a body that is not
UTF-8, gives no fields (the CSRF check then refuses it). It never raises for
bad input.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FIELDS = 20
MAX_VALUE = 2000
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        return {}
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: value.strip()[:MAX_VALUE] for name, value in pairs}
