"""tests.support.peers: a test whose system peer is missing is skipped, or fails under
UGEM_TEST_REQUIRE_PEERS=1 (as .ci/run sets it, so that a CI run cannot pass by skipping).

The helpers are called directly (pytest's skip and fail exceptions), and a marked test
module is run by pytest itself (pytester): sync, async, parametrized tests with fixtures.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.support import peers

pytest_plugins = ["pytester"]

ABSENT = "/nonexistent/ugem-test-peer"  # an absolute path no machine has
NO_MODULE = "ugem_test_no_such_module"


@pytest.fixture
def switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(peers.SWITCH, raising=False)


@pytest.fixture
def switch_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(peers.SWITCH, "1")


@pytest.mark.parametrize(
    ("value", "on"), [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_the_switch_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool
) -> None:
    if value is None:
        monkeypatch.delenv(peers.SWITCH, raising=False)
    else:
        monkeypatch.setenv(peers.SWITCH, value)
    assert peers.required() is on


def test_a_missing_peer_skips_the_test_without_the_switch(switch_off: None) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"^no such tool$"):
        peers.require(ABSENT, "no such tool")
    with pytest.raises(pytest.skip.Exception, match=r"^no such tool on PATH$"):
        peers.require("ugem-test-no-such-tool", "no such tool on PATH")
    with pytest.raises(pytest.skip.Exception, match=r"^no such module$"):
        peers.require_module(NO_MODULE, "no such module")
    with pytest.raises(pytest.skip.Exception, match=r"^needs root$"):
        peers.missing("needs root")


def test_a_missing_peer_fails_the_test_under_the_switch(switch_on: None) -> None:
    said = r" \(UGEM_TEST_REQUIRE_PEERS=1: a missing peer fails the test\)$"
    with pytest.raises(pytest.fail.Exception, match=r"^no such tool" + said):
        peers.require(ABSENT, "no such tool")
    with pytest.raises(pytest.fail.Exception, match=r"^no such tool on PATH" + said):
        peers.require("ugem-test-no-such-tool", "no such tool on PATH")
    with pytest.raises(pytest.fail.Exception, match=r"^no such module" + said):
        peers.require_module(NO_MODULE, "no such module")
    with pytest.raises(pytest.fail.Exception, match=r"^needs root" + said):
        peers.missing("needs root")


@pytest.mark.parametrize("switch", ["0", "1"])
def test_a_present_peer_is_given_either_way(monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    monkeypatch.setenv(peers.SWITCH, switch)
    directory, name = os.path.split(os.path.realpath(sys.executable))
    monkeypatch.setenv("PATH", directory)
    assert peers.require(name, "the interpreter") == os.path.join(directory, name)
    assert peers.require(sys.executable, "the interpreter") == sys.executable
    assert peers.require_module("json", "the standard library") is json


MARKED = """
import pytest

from tests.support.peers import needs

absent = needs(False, "the peer is not installed")


@pytest.fixture
def given(tmp_path):
    return tmp_path


@absent
def test_sync(given):
    raise AssertionError("ran without its peer")


@absent
async def test_async(given):
    raise AssertionError("ran without its peer")


@absent
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(given, n):
    raise AssertionError("ran without its peer")


@needs(True, "the peer is installed")
async def test_present(given):
    assert given.is_dir()
"""


@pytest.mark.parametrize("switch", [None, "1"])
def test_a_marked_test_skips_or_fails_in_a_pytest_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, switch: str | None
) -> None:
    if switch is None:
        monkeypatch.delenv(peers.SWITCH, raising=False)
    else:
        monkeypatch.setenv(peers.SWITCH, switch)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rsf")
    if switch is None:
        result.assert_outcomes(passed=1, skipped=4)
        result.stdout.fnmatch_lines(["SKIPPED *the peer is not installed"])
    else:
        result.assert_outcomes(passed=1, failed=4)
        said = f"the peer is not installed ({peers.SWITCH}=1: a missing peer fails the test)"
        result.stdout.fnmatch_lines(["*_ test_sync _*", said, "*_ test_async _*", said])
        assert "ran without its peer" not in result.stdout.str()
