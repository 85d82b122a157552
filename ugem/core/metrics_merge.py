"""Several workers' Prometheus pages as one: the node-wide /metrics of `ugem serve --workers N`.

`merge(pages)` takes `(worker, text)` pairs in the text exposition format
(what `prometheus_client.generate_latest` writes) and gives one page in which
every sample carries a `worker="<i>"` label, and each metric family appears
once: its `# HELP` and `# TYPE` lines (the first page's), then the samples of
every worker, so the page stays valid (a family's lines must be one group).
A sample line it cannot read is passed through unchanged rather than
dropped. Linear in the pages' size; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

Family = tuple[list[str], list[str]]  # (HELP and TYPE lines, samples)


def merge(pages: Iterable[tuple[int, str]]) -> str:
    families: dict[str, Family] = {}
    for worker, text in pages:
        current = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                current = _family_of_comment(line) or current
                head, _ = families.setdefault(current, ([], []))
                if line not in head:  # every worker's head is the same: kept once
                    head.append(line)
                continue
            name = _sample_name(line)
            key = current if name.startswith(current) and current else name
            families.setdefault(key, ([], []))[1].append(_labelled(line, name, worker))
    out = []
    for head, samples in families.values():
        out.extend(head)
        out.extend(samples)
    return "\n".join(out) + "\n"


def _family_of_comment(line: str) -> str:
    """The metric a `# HELP name ...` or `# TYPE name ...` line is about; "" for others."""
    parts = line.split(None, 3)
    if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
        return parts[2]
    return ""


def _sample_name(line: str) -> str:
    end = len(line)
    for stop in ("{", " "):
        at = line.find(stop)
        if at != -1:
            end = min(end, at)
    return line[:end]


def _labelled(line: str, name: str, worker: int) -> str:
    label = f'worker="{worker}"'
    rest = line[len(name) :]
    if rest.startswith("{"):
        inner = rest[1:].lstrip()
        joiner = "" if inner.startswith("}") else ","
        return f"{name}{{{label}{joiner}{rest[1:]}"
    if rest.startswith(" "):
        return f"{name}{{{label}}}{rest}"
    return line
