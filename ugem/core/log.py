"""Structured logging: one line per event, JSON (or key=value text).

Call `event(logger, "delivered", queue_id=..., rcpt=...)`: the event name and
the fields become one line. Per-message events on the hot path are logged at
DEBUG; INFO and above are for things an operator acts on. `setup()` configures
the root logger once for a process and silences uvicorn's per-request INFO
lines. Logging never raises into the caller.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


_ENCODE = json.JSONEncoder(default=str, ensure_ascii=False).encode  # one encoder, not one a line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _ENCODE(out)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        event = getattr(record, "event", None) or record.getMessage()
        fields = " ".join(
            f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}"
            for k, v in getattr(record, "fields", {}).items()
        )
        line = f"{stamp} {record.levelname.lower()} {record.name} {event} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def set_level(level: str) -> None:
    """The root logger's level anew (a reload); its handlers stay as `setup` made them."""
    logging.getLogger().setLevel(_LEVELS.get(level, logging.INFO))


def setup(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for noisy in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def event(
    logger: logging.Logger,
    name: str,
    level: int = logging.INFO,
    *,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one structured event; the fields appear as keys of the line.

    The record is made directly, without `Logger.log`'s walk of the stack for the
    caller's file and line, which no formatter here shows (a third of a line's cost).
    """
    if logger.isEnabledFor(level):
        error = sys.exc_info() if exc_info else None
        extra = {"event": name, "fields": fields}
        logger.handle(logger.makeRecord(logger.name, level, "", 0, name, (), error, extra=extra))
