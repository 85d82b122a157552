"""What can be checked of the Dockerfile and its .dockerignore without a Docker engine.

The .dockerignore is read as BuildKit reads it: the last pattern that matches a path,
or any directory above it, decides (`!` keeps what an earlier pattern left out).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ugem.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
CONTEXT_LIMIT = 10 * 2**20  # bytes: the sources and the lock are about 3 MB, the venv 270


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1]
        for line in joined.splitlines()
        if line.upper().startswith(name + " ")
    ]


def test_every_copied_path_exists() -> None:
    for args in instructions("COPY"):
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_its_command_is_a_real_ugem_command() -> None:
    assert instructions("ENTRYPOINT") == ['["ugem"]']
    (cmd,) = instructions("CMD")
    argv = re.findall(r'"([^"]+)"', cmd)
    args = build_parser().parse_args(argv)
    assert args.command == "serve"


def test_runs_as_non_root_with_a_data_volume_ports_and_healthcheck() -> None:
    assert instructions("USER") == ["ugem"]
    assert instructions("FROM")[0].endswith("-slim")
    assert '"/var/lib/ugem"' in instructions("VOLUME")[0]
    assert instructions("EXPOSE") == ["2525 8025"]
    (health,) = instructions("HEALTHCHECK")
    assert "/healthz" in health
    env = " ".join(instructions("ENV"))
    assert "UGEM_NODE_DATA_DIR=/var/lib/ugem" in env


def copied_sources() -> list[str]:
    return [source for args in instructions("COPY") for source in args.split()[:-1]]


def ignore_rules() -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, keep) per line of .dockerignore, in order; keep: a `!` line."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((_regex(os.path.normpath(line.lstrip("!").lstrip("/"))), keep))
    return rules


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `**` any directories (none too), `*` and `?` within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def sent(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether `path` (relative, with /) goes into the build context."""
    parts = path.split("/")
    above = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = True
    for pattern, keep in rules:
        if any(pattern.fullmatch(p) for p in above):
            verdict = keep
    return verdict


def context_files(rules: list[tuple[re.Pattern[str], bool]]) -> Iterator[Path]:
    """The files of the repository that go into the build context."""
    for top, dirs, files in os.walk(ROOT):
        rel = Path(top).relative_to(ROOT)
        dirs[:] = [d for d in dirs if sent((rel / d).as_posix(), rules)]
        for name in files:
            if sent((rel / name).as_posix(), rules):
                yield Path(top) / name


def test_the_context_keeps_every_file_the_dockerfile_copies() -> None:
    rules = ignore_rules()
    for source in copied_sources():
        assert sent(source, rules), f".dockerignore leaves out {source}, which is copied"
        for top, dirs, files in os.walk(ROOT / source):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.endswith("_cache")]
            for name in files:
                rel = (Path(top) / name).relative_to(ROOT).as_posix()
                assert sent(rel, rules) or rel.endswith(".pyc"), f"{rel} left out"


def test_the_context_leaves_out_the_venv_var_git_caches_and_tests() -> None:
    rules = ignore_rules()
    for path in (
        ".venv/bin/python",
        "var/spool/queue.db",
        ".git/HEAD",
        "tests/unit/test_dockerfile.py",
        "ugem.egg-info/PKG-INFO",
        ".mypy_cache/3.11/x.json",
        "ugem/core/__pycache__/metrics.cpython-311.pyc",
        "relay/queue/spool.pyc",
        "ugem/core/.ruff_cache/x",
    ):
        assert not sent(path, rules), f"{path} would go into the build context"
    assert sent("ugem/core/templates/notices/alert-suspended.en.txt", rules)  # package data stays


def test_the_build_context_is_small() -> None:
    size = sum(path.stat().st_size for path in context_files(ignore_rules()))
    assert 0 < size < CONTEXT_LIMIT, f"build context of {size / 2**20:.1f} MiB"
