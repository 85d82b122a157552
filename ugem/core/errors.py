"""The one exception tree of the project.

Every error the project raises on purpose derives from `UgemError`. Lower-level
errors (sqlite3, redis, OSError, aiosmtplib, dnspython) are caught at the
boundary of the module that calls them and re-raised as one of these with
``raise X(...) from exc``, so callers handle a small, closed set::

    UgemError
    ├── ConfigError            bad configuration: names the key, the value, what is allowed
    ├── UsageError             bad CLI or API input: names the argument and what is allowed
    ├── NotFoundError          an id that does not exist
    ├── ConflictError          a request that contradicts the current state
    ├── ForbiddenError         the caller's role does not allow it: names the role needed
    ├── StoreError             the registry's store failed (SQLite or Redis)
    ├── SpoolError             the spool could not make a message durable
    │   ├── SpoolFullError     no space left (disk full or spool size cap): 452 4.3.1
    │   └── SpoolCorruptError  a record failed its checksum; it is quarantined
    └── DeliveryError          an outbound attempt failed; carries the failure class
"""

from __future__ import annotations


class UgemError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(UgemError):
    """Invalid configuration. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        what = key if key.startswith(("--", "UGEM_")) else f"key {key}"
        super().__init__(f"config {what}: {value!r} is not valid; {allowed}")


class UsageError(UgemError):
    """Invalid input to the CLI or the API."""


class NotFoundError(UgemError):
    """The named object does not exist."""


class ConflictError(UgemError):
    """The request contradicts the current state; the message says what to do."""


class ForbiddenError(UgemError):
    """The caller's role does not allow the action; the message names the role it needs."""


class StoreError(UgemError):
    """The registry's backing store failed."""


class SpoolError(UgemError):
    """The spool could not make a message durable or read it back."""


class SpoolFullError(SpoolError):
    """No space left for the spool (disk full, or the configured size cap)."""


class SpoolCorruptError(SpoolError):
    """A spooled record failed its integrity check."""


class DeliveryError(UgemError):
    """An outbound delivery attempt failed before any per-recipient reply."""
