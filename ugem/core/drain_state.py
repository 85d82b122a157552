"""A node's drain on disk: the request, each worker's answer, the progress, the locks.

Every process of a node (each worker of `ugem serve --workers N`, a `ugem drain`
beside them, the admin API of any worker) sees a drain through the files of
`DrainFiles(<data_dir>/drain)`, so none has to reach another:

- `request.json`, the drain asked for (`DrainRequest`: id, where to, since, by
  whom). While it exists the node is draining, across restarts, until `clear()`.
- `w<i>.lock`, held (flock) by worker i for as long as it runs (`WorkerLock`);
  the kernel lets it go when the process dies, however it dies, so a lock that
  can be taken means that no worker i runs (`running_workers`).
- `w<i>.json`, worker i's answer (`WorkerAnswer`): the request it paused for,
  its attempts in flight and open sessions, and `quiet` once it has neither.
- `progress.json`, the last report of a drain run, as a JSON object.
- `run.lock`, held by the process that moves the queue (`run_lock`), so two
  runs never move one queue at once.

Promise: the request, the answers and the progress are written whole (a
temporary file, fsynced, renamed over the old one, the directory fsynced): a
reader sees the old or the new file, never a torn one, and a request once
written survives a crash. How it fails: a request that cannot be written or
read (OSError, a file that is not a request) raises `UgemError` naming the
file, as the node cannot say whether it is draining; an answer or a progress
that cannot be read is taken as absent (they are written again), and one that
cannot be written is logged (`drain_state_unwritten`) and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ugem.core.errors import UgemError
from ugem.core.log import event

log = logging.getLogger(__name__)

_WORKER = re.compile(r"w(\d+)\.lock")


@dataclass(frozen=True)
class DrainRequest:
    """A drain asked for: hand this node's queue to `to`."""

    id: str
    to: str
    since: float
    by: str


@dataclass(frozen=True)
class WorkerAnswer:
    """What worker `worker` (process `pid`) reported for request `request` at `at`."""

    worker: int
    request: str
    pid: int
    in_flight: int  # delivery attempts still running
    sessions: int  # SMTP sessions still open
    quiet: bool  # neither: its part of the queue no longer changes under a reader
    at: float


class FileLock:
    """An exclusive flock on a file, held until `release` or the death of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if no other holder has it (creating the file); True when held."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor lets the lock go


def is_locked(path: Path) -> bool:
    """Whether some holder (another process, or another descriptor of this one) has the
    exclusive lock of `path`; False when the file does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class DrainFiles:
    """The drain's files under `directory` (`<data_dir>/drain`); see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def of(cls, data_dir: Path) -> DrainFiles:
        return cls(Path(data_dir) / "drain")

    # ------------------------------------------------------------ the request

    @property
    def request_path(self) -> Path:
        return self.directory / "request.json"

    def request(self) -> DrainRequest | None:
        """The drain asked for, None when the node is not draining."""
        try:
            text = self.request_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UgemError(f"drain request {self.request_path}: {exc.strerror}") from exc
        try:
            fields = json.loads(text)
            return DrainRequest(
                str(fields["id"]), str(fields["to"]), float(fields["since"]), str(fields["by"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UgemError(f"drain request {self.request_path} is damaged: {exc}") from exc

    def ask(self, request: DrainRequest) -> None:
        """Write the request (durable when this returns)."""
        try:
            self._write(self.request_path, asdict(request))
        except OSError as exc:
            raise UgemError(f"drain request {self.request_path}: {exc.strerror}") from exc

    def clear(self) -> bool:
        """Remove the request: the node takes mail again. True if there was one."""
        try:
            self.request_path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UgemError(f"drain request {self.request_path}: {exc.strerror}") from exc
        _fsync_dir(self.directory)
        return True

    # ------------------------------------------------------------ the workers

    def worker_lock(self, worker: int) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / f"w{worker}.lock")

    def running_workers(self) -> list[int]:
        """The workers whose lock is held now: the running ones, in order."""
        found = (_WORKER.fullmatch(p.name) for p in self._listing("w*.lock"))
        numbers = sorted(int(m.group(1)) for m in found if m is not None)
        return [n for n in numbers if is_locked(self.directory / f"w{n}.lock")]

    def answer(self, worker: int) -> WorkerAnswer | None:
        fields = self._read(self.directory / f"w{worker}.json")
        try:
            return None if fields is None else WorkerAnswer(**fields)
        except TypeError:
            return None

    def give_answer(self, answer: WorkerAnswer) -> None:
        self._write_quietly(self.directory / f"w{answer.worker}.json", asdict(answer))

    def withdraw_answer(self, worker: int) -> None:
        with contextlib.suppress(OSError):
            (self.directory / f"w{worker}.json").unlink()

    # ------------------------------------------------------------ the run

    def run_lock(self) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / "run.lock")

    def running(self) -> bool:
        """Whether a drain run holds the run lock now (in any process)."""
        return is_locked(self.directory / "run.lock")

    def progress(self) -> dict[str, Any] | None:
        return self._read(self.directory / "progress.json")

    def report(self, progress: dict[str, Any]) -> None:
        self._write_quietly(self.directory / "progress.json", progress)

    # ------------------------------------------------------------ plumbing

    def _listing(self, pattern: str) -> list[Path]:
        try:
            return list(self.directory.glob(pattern))
        except OSError:
            return []

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return fields if isinstance(fields, dict) else None

    def _write(self, path: Path, fields: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as out:
            json.dump(fields, out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
        _fsync_dir(self.directory)

    def _write_quietly(self, path: Path, fields: dict[str, Any]) -> None:
        try:
            self._write(path, fields)
        except OSError as exc:
            event(log, "drain_state_unwritten", logging.WARNING, path=str(path), error=str(exc))


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a removal in `directory` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
