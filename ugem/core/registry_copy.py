"""The registry's copy on local disk: what a node relays on while its store is down.

`RegistryCopy` is the view a registry last read from its store: the store's
generation and version, when the store last confirmed that view (`read_at`,
Unix time) and every connection (domains, servers, states). A node keeps one
per worker in its data dir (`registry-copy.json`, `registry-copy.w1.json`,
...: `COPY_NAME`, named per worker by the node). `CopyFile.save` writes it
atomically (a temporary file beside it, fsync, rename, fsync of the
directory), so a crash leaves the old copy or the new one, never a torn one;
the write runs in a worker thread, one at a time, and a copy older than the
one written last (of the same generation: version, then read_at) is not
written over it. `read_copy`
gives a copy back (None when there is none); one that cannot be read or
parsed is a `StoreError` naming the file, so a damaged copy is never taken
for an empty registry. `copy_paths(data_dir)` lists the copies a data dir
holds (for `ugem store restore`).

The file is JSON: `{"format": 1, "generation": ..., "version": ...,
"read_at": ..., "connections": [Connection.to_dict(), ...]}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ugem.core.errors import StoreError, UgemError
from ugem.core.model import Connection

COPY_NAME = "registry-copy.json"
FORMAT = 1


@dataclass(frozen=True)
class RegistryCopy:
    generation: str
    version: int
    read_at: float  # Unix time the store last confirmed this view
    connections: tuple[Connection, ...]

    def age(self, now: float) -> float:
        return max(0.0, now - self.read_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "generation": self.generation,
            "version": self.version,
            "read_at": self.read_at,
            "connections": [conn.to_dict() for conn in self.connections],
        }

    @classmethod
    def from_dict(cls, data: Any) -> RegistryCopy:
        """The copy `data` holds; ValueError, KeyError or TypeError if it holds none."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a registry copy of format {FORMAT}")
        conns = tuple(Connection.from_dict(item) for item in data["connections"])
        return cls(str(data["generation"]), int(data["version"]), float(data["read_at"]), conns)


def read_copy(path: Path) -> RegistryCopy | None:
    """The copy at `path`; None if there is no file; StoreError if it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"registry copy {path}: cannot be read: {exc}") from exc
    try:
        return RegistryCopy.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, UgemError) as exc:
        raise StoreError(f"registry copy {path}: is damaged: {exc}") from exc


def copy_paths(data_dir: Path) -> list[Path]:
    """The registry copies of every worker in `data_dir`, by name."""
    return sorted(data_dir.glob("registry-copy*.json"))


def write_copy(path: Path, copy: RegistryCopy) -> None:
    """Replace the file at `path` by `copy`, atomically and durably; StoreError on failure."""
    text = json.dumps(copy.to_dict(), ensure_ascii=False, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"registry copy {path}: cannot be written: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CopyFile:
    """One worker's copy on disk: written in a thread, never over a newer one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._written: tuple[str, int, float] | None = None  # (generation, version, read_at)

    @property
    def written_at(self) -> float | None:
        """The read_at of the copy on disk (None: none yet)."""
        return None if self._written is None else self._written[2]

    def read(self) -> RegistryCopy | None:
        copy = read_copy(self.path)
        if copy is not None:
            self._written = _mark(copy)
        return copy

    async def save(self, copy: RegistryCopy) -> None:
        """Write `copy` unless a newer one is on disk; StoreError if it cannot be written."""
        async with self._lock:
            last = self._written
            if last is not None and copy.generation == last[0] and _mark(copy) <= last:
                return
            await asyncio.to_thread(write_copy, self.path, copy)
            self._written = _mark(copy)


def _mark(copy: RegistryCopy) -> tuple[str, int, float]:
    return copy.generation, copy.version, copy.read_at
