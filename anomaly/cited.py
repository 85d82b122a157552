"""What the world said about a connection's mail lately: blocklists named, complaints made.

A suspension's reason reaches the connection's owner in a notice; when remote
servers refused its mail naming a blocklist (Spamhaus, Barracuda, Microsoft's
S3150 ...: the `blocklist` of a delivery outcome, ugem.core.reply_class), or
recipients complained through a feedback loop (ugem.core.services.complaints),
the owner should read that among the reasons: it is what the suspension
protects the gateway's addresses from. `Cited.reply(ts, connection, list)`
and `Cited.complaint(ts, connection)` note them; `Cited.describe(connection,
now)` says those of the last `WINDOW_S`, e.g. "remote servers named
blocklists: Spamhaus 12, Barracuda 3; recipients' complaints: 4" ("" when
none). Bounded: at most `PER_CONNECTION` notes a connection (the oldest
forgotten) and `MAX_CONNECTIONS` connections (then new ones are not noted).
Pure bookkeeping in event time; nothing raises.
"""

from __future__ import annotations

from collections import Counter, deque

WINDOW_S = 6 * 3600.0  # how far back a suspension's reasons look
PER_CONNECTION = 256
MAX_CONNECTIONS = 10_000
MOST_LISTS = 3  # blocklists named in a reason at most
COMPLAINT = ""  # the note of a complaint (a blocklist's name otherwise)


class Cited:
    __slots__ = ("_notes",)

    def __init__(self) -> None:
        self._notes: dict[str, deque[tuple[float, str]]] = {}

    def reply(self, ts: float, connection: str, blocklist: str) -> None:
        """A remote reply to `connection`'s mail named `blocklist` (nothing if "")."""
        if blocklist:
            self._note(ts, connection, blocklist)

    def complaint(self, ts: float, connection: str) -> None:
        self._note(ts, connection, COMPLAINT)

    def _note(self, ts: float, connection: str, what: str) -> None:
        notes = self._notes.get(connection)
        if notes is None:
            if len(self._notes) >= MAX_CONNECTIONS:
                return
            notes = self._notes[connection] = deque(maxlen=PER_CONNECTION)
        notes.append((ts, what))

    def describe(self, connection: str, now: float) -> str:
        """The blocklists named and complaints made about `connection` in the last WINDOW_S."""
        notes = self._notes.get(connection)
        if not notes:
            return ""
        recent = Counter(what for ts, what in notes if ts >= now - WINDOW_S)
        complaints = recent.pop(COMPLAINT, 0)
        parts = []
        if recent:
            named = ", ".join(f"{name} {n}" for name, n in recent.most_common(MOST_LISTS))
            parts.append(f"remote servers named blocklists: {named}")
        if complaints:
            parts.append(f"recipients' complaints: {complaints}")
        return "; ".join(parts)
