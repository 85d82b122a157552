"""What can be checked of the Dockerfile without a Docker engine on this machine."""

from __future__ import annotations

import re
from pathlib import Path

from ugem.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


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
