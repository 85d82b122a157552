"""System peers the tests need, and the switch under which a missing one fails the test.

A test that needs something from the machine (a program: redis-server, dnsmasq,
swaks, Postfix's smtp-source, Perl's Mail::DKIM, a C compiler, ss; root, for a
tmpfs or port 443; a locked package such as PyNaCl or uvloop) goes through this
module instead of calling pytest.skip itself:

- `require(tool, why)` returns the tool's path, for a name on PATH or an absolute path;
- `require_module(name, why)` imports a module, as pytest.importorskip does;
- `missing(why)` for any other check (`if os.geteuid() != 0: missing(...)`);
- `needs(present, why)` marks a test, in place of `pytest.mark.skipif(not present, ...)`.

Without the peer the test is skipped with `why`; with UGEM_TEST_REQUIRE_PEERS=1 in
the environment (.ci/run, where tests/install-system-deps.sh installed them) it fails
with `why` instead, so a run meant to exercise everything cannot pass by skipping.
Skips about something else (data outside the repository, the platform, what this
OpenSSL can do, a port in use) stay plain pytest.skip.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import shutil
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn, TypeVar, cast

import pytest

SWITCH = "UGEM_TEST_REQUIRE_PEERS"

Test = TypeVar("Test", bound=Callable[..., Any])


def required() -> bool:
    """Whether a missing peer fails the test (the switch is set, and not to 0) or skips it."""
    return os.environ.get(SWITCH, "").strip() not in ("", "0")


def missing(why: str) -> NoReturn:
    """Skip the running test (or fixture) because a peer is missing; fail it under the switch."""
    __tracebackhide__ = True  # the skip is reported at the caller's line
    if required():
        pytest.fail(f"{why} ({SWITCH}=1: a missing peer fails the test)", pytrace=False)
    pytest.skip(why)


def find(tool: str) -> str | None:
    """The path of an executable: a name looked up on PATH, or an absolute path."""
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    return shutil.which(tool)


def require(tool: str, why: str) -> str:
    """The path of `tool` (a name on PATH or an absolute path); `missing(why)` if there is none."""
    __tracebackhide__ = True
    path = find(tool)
    if path is None:
        missing(why)
    return path


def require_module(name: str, why: str) -> ModuleType:
    """The module `name`, imported; `missing(why)` if it cannot be."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(why)


def needs(present: bool, why: str) -> Callable[[Test], Test]:
    """Decorator for a test that needs a peer: `@needs(have_swaks(), "swaks is not installed")`.

    With the peer the test is left as it is; without it, it is marked skip with `why`,
    or, under the switch, replaced by one that takes the same fixtures and marks and
    fails with `why`.
    """

    def mark(test: Test) -> Test:
        if present:
            return test
        if not required():
            return cast(Test, pytest.mark.skip(reason=why)(test))
        if inspect.iscoroutinefunction(test):

            @functools.wraps(test)
            async def fails_async(*args: Any, **kwargs: Any) -> None:
                missing(why)

            return cast(Test, fails_async)

        @functools.wraps(test)
        def fails(*args: Any, **kwargs: Any) -> None:
            missing(why)

        return cast(Test, fails)

    return mark
