"""ugem.parent_death: a worker whose supervisor is gone stops at once."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from ugem.parent_death import PARENT_ENV, parent_from_env


def test_the_supervisor_pid_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PARENT_ENV, "4321")
    assert parent_from_env() == 4321
    monkeypatch.setenv(PARENT_ENV, "not a pid")
    assert parent_from_env() is None
    monkeypatch.delenv(PARENT_ENV)
    assert parent_from_env() is None


def test_a_worker_whose_parent_is_already_gone_is_sent_sigterm() -> None:
    code = "from ugem.parent_death import die_with_parent; die_with_parent(1); print('alive')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.returncode == -signal.SIGTERM and b"alive" not in done.stdout


def test_a_worker_whose_parent_lives_goes_on() -> None:
    code = (
        "import os; from ugem.parent_death import die_with_parent;"
        " die_with_parent(os.getppid()); print('alive')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.returncode == 0 and b"alive" in done.stdout
