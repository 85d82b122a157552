"""The contract every registry store keeps, run against SQLite and a real Redis.

Each test gets `stores`, a factory of store objects on one backing file or
server, so "another process's change" is a second, independent store object
(and, in `test_concurrent_processes_lose_no_write`, real other processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from loadtest.ports import free_port
from tests.support.connections import full, plain
from ugem.core.clock import FakeClock
from ugem.core.errors import ConfigError, ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.model import ConnState
from ugem.core.services.audit import AuditLog
from ugem.core.services.incidents import (
    Action,
    Evidence,
    GatewayFacts,
    IncidentKind,
    IncidentService,
    Mode,
    Suspect,
)
from ugem.core.store import Store, open_store
from ugem.core.store.base import GENESIS, AuditEntry, IncidentRecord
from ugem.core.store.codec import seal
from ugem.core.store.redis import RedisStore
from ugem.core.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
StoreFactory = Callable[[], Store]


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[StoreFactory]:
    opened: list[Store] = []

    def make() -> Store:
        opened.append(open_store(store_url))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(stores: StoreFactory) -> Store:
    return stores()


async def test_every_field_round_trips(stores: StoreFactory) -> None:
    conn = full()
    await stores().add(conn)
    other = stores()
    assert await other.get(conn.id) == conn
    assert await other.list() == [conn]
    assert (await other.get(conn.id)).org_name == "Қазақстан Республикасының Қаржы министрлігі"  # type: ignore[union-attr]


async def test_ipv6_servers_and_networks_kept(store: Store) -> None:
    conn = plain("v6.gov.kz", "2001:db8::1", "2001:DB8:0:0:1::/80", "::ffff:192.0.2.9")
    await store.add(conn)
    got = await store.get("v6.gov.kz")
    assert got is not None
    assert got.servers == ("2001:db8::1/128", "2001:db8:0:0:1::/80", "::ffff:c000:209/128")


async def test_get_of_missing_id_is_none(store: Store) -> None:
    assert await store.get("nobody.gov.kz") is None


async def test_list_is_ordered_by_id(store: Store) -> None:
    for ident in ("c.gov.kz", "a.gov.kz", "b.gov.kz"):
        await store.add(plain(ident))
    assert [c.id for c in await store.list()] == ["a.gov.kz", "b.gov.kz", "c.gov.kz"]


async def test_add_of_existing_id_conflicts_and_changes_nothing(store: Store) -> None:
    first = plain("a.gov.kz")
    await store.add(first)
    version = await store.version()
    with pytest.raises(ConflictError, match=r"'a\.gov\.kz' exists"):
        await store.add(dataclasses.replace(first, org_name="Impostor"))
    assert await store.get("a.gov.kz") == first
    assert await store.version() == version


async def test_add_of_owned_domain_names_domain_and_owner(store: Store) -> None:
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "shared.kz")))
    version = await store.version()
    with pytest.raises(ConflictError) as caught:
        await store.add(plain("b.gov.kz", domains=("b.gov.kz", "shared.kz")))
    assert "'shared.kz'" in str(caught.value)
    assert "'a.gov.kz'" in str(caught.value)
    assert await store.get("b.gov.kz") is None
    assert await store.version() == version


async def test_id_is_a_domain_too(store: Store) -> None:
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "b.gov.kz")))
    with pytest.raises(ConflictError, match=r"'b\.gov\.kz' belongs to connection 'a\.gov\.kz'"):
        await store.add(plain("b.gov.kz"))


async def test_put_replaces_and_moves_the_domain_index(store: Store) -> None:
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "old.kz")))
    renamed = plain("a.gov.kz", "203.0.113.5", domains=("a.gov.kz", "new.kz"))
    await store.put(renamed)
    assert await store.get("a.gov.kz") == renamed
    await store.add(plain("b.gov.kz", domains=("b.gov.kz", "old.kz")))  # freed by the put
    with pytest.raises(ConflictError, match=r"'new\.kz' belongs to connection 'a\.gov\.kz'"):
        await store.add(plain("c.gov.kz", domains=("c.gov.kz", "new.kz")))


async def test_put_creates_when_absent(store: Store) -> None:
    await store.put(plain("a.gov.kz"))
    assert [c.id for c in await store.list()] == ["a.gov.kz"]


async def test_put_cannot_take_another_connections_domain(store: Store) -> None:
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "x.kz")))
    await store.add(plain("b.gov.kz"))
    thief = plain("b.gov.kz", domains=("b.gov.kz", "x.kz"))
    with pytest.raises(ConflictError, match=r"'x\.kz' belongs to connection 'a\.gov\.kz'"):
        await store.put(thief)
    assert await store.get("b.gov.kz") == plain("b.gov.kz")


async def test_delete_removes_and_frees_domains(store: Store) -> None:
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "x.kz")))
    assert await store.delete("a.gov.kz") is True
    assert await store.get("a.gov.kz") is None
    assert await store.delete("a.gov.kz") is False
    await store.add(plain("b.gov.kz", domains=("b.gov.kz", "x.kz")))
    assert [c.id for c in await store.list()] == ["b.gov.kz"]


async def test_every_write_changes_the_version_seen_by_another_store(
    stores: StoreFactory,
) -> None:
    writer, reader = stores(), stores()
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: writer.add(plain("a.gov.kz")),
        lambda: writer.put(dataclasses.replace(plain("a.gov.kz"), state=ConnState.SUSPENDED)),
        lambda: writer.put(plain("b.gov.kz")),
        lambda: writer.audit(AuditEntry(1.0, "cli:test", "connection.add", "b.gov.kz")),
        lambda: writer.delete("b.gov.kz"),
    ]
    seen = [await reader.version()]
    for write in writes:
        await write()
        seen.append(await reader.version())
    assert len(set(seen)) == len(seen), f"a write left the version unchanged: {seen}"
    assert (await reader.get("a.gov.kz")).state == ConnState.SUSPENDED  # type: ignore[union-attr]


async def test_reads_and_refused_writes_leave_the_version(store: Store) -> None:
    await store.add(plain("a.gov.kz"))
    version = await store.version()
    await store.get("a.gov.kz")
    await store.list()
    await store.audit_log()
    assert await store.delete("nobody.gov.kz") is False
    with pytest.raises(ConflictError):
        await store.add(plain("a.gov.kz"))
    assert await store.version() == version


async def test_audit_is_newest_first_and_filtered(stores: StoreFactory) -> None:
    writer = stores()
    entries = [
        AuditEntry(10.0, "cli:ops", "connection.add", "a.gov.kz"),
        AuditEntry(
            20.0,
            "detector",
            "connection.suspend",
            "a.gov.kz",
            "rate 40x",
            json.dumps({"score": 9.5}),
        ),
        AuditEntry(30.0, "api:noc", "connection.add", "b.gov.kz", "новое подключение"),
        AuditEntry(5.0, "cli:ops", "connection.resume", "a.gov.kz", "ложная тревога"),
    ]
    for entry in entries:
        await writer.audit(entry)
    reader = stores()
    assert await reader.audit_log() == entries[::-1]  # order of writing, not of ts
    assert await reader.audit_log("a.gov.kz") == [entries[3], entries[1], entries[0]]
    assert await reader.audit_log("a.gov.kz", limit=2) == [entries[3], entries[1]]
    assert await reader.audit_log("c.gov.kz") == []


async def test_audit_log_refuses_a_limit_below_one(store: Store) -> None:
    with pytest.raises(UsageError, match="limit"):
        await store.audit_log(limit=0)


_CHILD = """
import asyncio, sys
from tests.support.connections import plain
from ugem.core.errors import ConflictError
from ugem.core.store import open_store

async def main(url: str, name: str, count: int) -> None:
    store = open_store(url)
    won = 0
    try:
        for i in range(count):
            await store.add(plain(f"{name}{i}.gov.kz"))
            try:
                own = f"{name}-race{i}.gov.kz"
                await store.add(plain(own, domains=(own, f"race{i}.kz")))
                won += 1
            except ConflictError:
                pass
    finally:
        await store.close()
    print(won)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_concurrent_processes_lose_no_write(store_url: str, store: Store) -> None:
    """Three processes add at once: every add lands, each contested domain has one owner.

    Both stores count writes, so the version moves by exactly the number of writes.
    """
    count, names = 25, ("p", "q", "r")
    before = await store.version()
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            store_url,
            name,
            str(count),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for name in names
    ]
    outputs = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0]
    wins = sum(int(out.decode()) for out, _err in outputs)
    assert wins == count  # each race{i}.kz went to exactly one process
    conns = await store.list()
    assert len(conns) == len(names) * count + wins
    assert await store.version() - before == len(conns)
    owners = [c.id for c in conns for d in c.domains if d.startswith("race")]
    assert len(owners) == count


async def test_a_failed_backend_raises_store_error(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        store = open_store(store_url)
        await store.close()
    else:
        store = open_store(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    try:
        with pytest.raises(StoreError):
            await store.version()
        with pytest.raises(StoreError):
            await store.add(plain("a.gov.kz"))
        with pytest.raises(StoreError):
            await store.audit_log()
    finally:
        await store.close()


ENTRY = AuditEntry(ts=1.0, actor="cli:test", action="connection.add", target="a.gov.kz")
EVERY_CALL: dict[str, Callable[[Store], Awaitable[object]]] = {
    "add": lambda s: s.add(plain("b.gov.kz")),
    "put": lambda s: s.put(plain("a.gov.kz")),
    "get": lambda s: s.get("a.gov.kz"),
    "list": lambda s: s.list(),
    "delete": lambda s: s.delete("a.gov.kz"),
    "version": lambda s: s.version(),
    "generation": lambda s: s.generation(),
    "init_generation": lambda s: s.init_generation("g"),
    "restore_registry": lambda s: s.restore_registry("g", 1, [plain("a.gov.kz")]),
    "audit": lambda s: s.audit(ENTRY),
    "audit_records": lambda s: s.audit_records(),
    "audit_chain": lambda s: s.audit_chain(),
    "audit_head": lambda s: s.audit_head(),
    "doc_add": lambda s: s.doc_add("kind", "id", "{}"),
    "doc_put": lambda s: s.doc_put("kind", "id", "{}"),
    "doc_get": lambda s: s.doc_get("kind", "id"),
    "doc_list": lambda s: s.doc_list("kind"),
    "incident_open": lambda s: s.incident_open("a.gov.kz", "{}"),
    "incident_update": lambda s: s.incident_update(IncidentRecord(1, "a.gov.kz", "open", 1, "")),
    "incident_get": lambda s: s.incident_get(1),
    "incident_list": lambda s: s.incident_list(),
    "journal_append": lambda s: s.journal_append("kind", "{}", 10),
    "journal_list": lambda s: s.journal_list("kind"),
    "journal_size": lambda s: s.journal_size("kind"),
}


async def test_a_closed_store_refuses_every_call(store_url: str) -> None:
    store = open_store(store_url)
    await store.add(plain("a.gov.kz"))
    await store.close()
    for name, call in EVERY_CALL.items():
        with pytest.raises(StoreError):
            await call(store)
            pytest.fail(f"{name} answered after close()")
    await store.close()  # a second close does nothing


async def test_sqlite_store_that_cannot_open_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        open_store(f"sqlite:///{tmp_path / 'file' / 'registry.db'}")


async def test_damaged_sqlite_row_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    store = open_store(f"sqlite:///{path}")
    try:
        await store.add(plain("a.gov.kz"))
        with sqlite3.connect(path) as db:
            db.execute("UPDATE connections SET data = '{\"id\": 1}'")
        db.close()
        with pytest.raises(StoreError, match=r"'a\.gov\.kz'.*damaged"):
            await store.list()
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "postgres://db/ugem",
        "sqlite://relative.db",
        "sqlite:///",
        "redis://",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/first",
        "file:///tmp/x.db",
    ],
)
def test_open_store_refuses_other_urls(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert caught.value.key == "store.url"
    assert repr(url) in str(caught.value)


async def test_open_store_picks_the_store_by_scheme(tmp_path: Path) -> None:
    sqlite_store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    redis_store = open_store("redis://127.0.0.1:6379/3")
    try:
        assert isinstance(sqlite_store, SqliteStore)
        assert sqlite_store.path == tmp_path / "r.db"
        assert isinstance(redis_store, RedisStore)
    finally:
        await sqlite_store.close()
        await redis_store.close()


async def test_audit_records_form_a_chain_with_the_head(stores: StoreFactory) -> None:
    writers = [stores(), stores()]
    entries = [
        AuditEntry(float(i), f"api:op{i % 2}", "connection.update", f"t{i % 3}.gov.kz", "why")
        for i in range(12)
    ]
    # two store objects append at once: no fork, no gap, whichever wins each race
    await asyncio.gather(*(writers[i % 2].audit(e) for i, e in enumerate(entries)))
    reader = stores()
    chain = await reader.audit_chain()
    assert [r.seq for r in chain] == list(range(1, 13))
    assert sorted(r.entry.ts for r in chain) == [e.ts for e in entries]
    prev = GENESIS
    for record in chain:
        assert record == seal(record.seq, prev, record.entry)
        prev = record.hash
    assert await reader.audit_head() == (12, prev)
    assert await reader.audit_chain(offset=10, limit=5) == chain[10:]


async def test_audit_records_keep_before_and_after_and_page_back(store: Store) -> None:
    for i in range(5):
        before, after = json.dumps({"state": f"s{i}"}), json.dumps({"state": f"s{i + 1}"})
        entry = AuditEntry(float(i), "api:noc", "connection.suspend", "a.gov.kz", "", "", before)
        await store.audit(dataclasses.replace(entry, after=after))
    await store.audit(AuditEntry(9.0, "detector", "connection.suspend", "b.gov.kz"))
    newest = await store.audit_records("a.gov.kz", limit=2)
    assert [r.seq for r in newest] == [5, 4]
    assert json.loads(newest[0].entry.after) == {"state": "s5"}
    assert [r.seq for r in await store.audit_records("a.gov.kz", before=4)] == [3, 2, 1]
    assert [r.seq for r in await store.audit_records(limit=3)] == [6, 5, 4]
    assert await store.audit_records("nobody.gov.kz") == []


async def test_an_empty_audit_log_has_the_genesis_head(store: Store) -> None:
    assert await store.audit_head() == (0, GENESIS)
    assert await store.audit_chain() == []


async def test_documents_by_kind_and_id(stores: StoreFactory) -> None:
    writer, reader = stores(), stores()
    version = await reader.version()
    await writer.doc_add("token", "noc", '{"role": "viewer"}')
    await writer.doc_add("token", "audit", '{"role": "admin"}')
    await writer.doc_add("application", "noc", '{"other": "kind"}')
    with pytest.raises(ConflictError, match=r"token 'noc' exists"):
        await writer.doc_add("token", "noc", "{}")
    await writer.doc_put("token", "noc", '{"role": "operator"}')
    assert await reader.doc_get("token", "noc") == '{"role": "operator"}'
    assert await reader.doc_get("token", "nobody") is None
    assert await reader.doc_list("token") == [
        ("audit", '{"role": "admin"}'),
        ("noc", '{"role": "operator"}'),
    ]
    assert await reader.version() == version  # documents are not the registry's business


async def test_sqlite_file_of_schema_1_gets_its_audit_rows_chained(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
            " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
            " reason TEXT NOT NULL, details TEXT NOT NULL)"
        )
        db.execute("INSERT INTO audit VALUES (1, 1.5, 'cli:a', 'connection.add', 'a.kz', '', '')")
        db.execute("INSERT INTO audit VALUES (2, 2.5, 'cli:a', 'connection.add', 'b.kz', 'x', '')")
    store = open_store(f"sqlite:///{path}")
    try:
        await store.audit(AuditEntry(3.5, "cli:a", "connection.add", "c.kz"))
        chain = await store.audit_chain()
        assert [(r.seq, r.entry.target) for r in chain] == [(1, "a.kz"), (2, "b.kz"), (3, "c.kz")]
        assert chain[1] == seal(2, chain[0].hash, chain[1].entry)
        assert await store.audit_head() == (3, chain[2].hash)
    finally:
        await store.close()


async def test_one_incident_not_closed_per_connection(stores: StoreFactory) -> None:
    writers = [stores() for _ in range(4)]
    version = await writers[0].version()
    opened = await asyncio.gather(*(w.incident_open("a.gov.kz", '{"n": 1}') for w in writers))
    assert sorted(created for _, created in opened) == [False, False, False, True]
    assert {record.id for record, _ in opened} == {1}
    assert opened[0][0] == IncidentRecord(1, "a.gov.kz", "open", 1, '{"n": 1}')
    other, created = await writers[1].incident_open("b.gov.kz", "{}")
    assert (other.id, created) == (2, True)
    assert await writers[0].version() == version  # incidents are not the registry's business


async def test_incident_update_checks_the_rev_and_closing_frees_the_connection(
    stores: StoreFactory,
) -> None:
    writer, reader = stores(), stores()
    first, _ = await writer.incident_open("a.gov.kz", '{"evidence": ["412 в 5 мин"]}')
    acked = dataclasses.replace(first, state="acknowledged", data='{"by": "api:noc"}')
    assert await writer.incident_update(acked) is True
    assert await writer.incident_update(acked) is False  # rev 1 is stale now
    seen = await reader.incident_get(first.id)
    assert seen == dataclasses.replace(acked, rev=2)
    again, created = await writer.incident_open("a.gov.kz", "{}")
    assert (again.id, created) == (first.id, False)  # acknowledged is not closed
    closed = dataclasses.replace(seen, state="closed")
    assert await reader.incident_update(closed) is True
    fresh, created = await writer.incident_open("a.gov.kz", "{}")
    assert (fresh.id, created) == (2, True)
    with pytest.raises(ConflictError, match="incident 1 is closed"):
        await writer.incident_update(dataclasses.replace(closed, rev=3, state="open"))
    with pytest.raises(NotFoundError, match="no incident 99"):
        await writer.incident_update(dataclasses.replace(closed, id=99))
    assert await reader.incident_get(99) is None


async def test_incidents_list_newest_first_by_state_and_connection(store: Store) -> None:
    for conn in ("a.gov.kz", "b.gov.kz", "c.gov.kz"):
        await store.incident_open(conn, "{}")
    second = await store.incident_get(2)
    assert second is not None
    await store.incident_update(dataclasses.replace(second, state="closed"))
    await store.incident_open("b.gov.kz", "{}")
    assert [r.id for r in await store.incident_list()] == [4, 3, 2, 1]
    assert [r.id for r in await store.incident_list(limit=2)] == [4, 3]
    assert [r.id for r in await store.incident_list(state="open")] == [4, 3, 1]
    assert [r.id for r in await store.incident_list(connection="b.gov.kz")] == [4, 2]
    assert [r.id for r in await store.incident_list("closed", "b.gov.kz")] == [2]
    assert await store.incident_list(connection="nobody.gov.kz") == []
    with pytest.raises(UsageError, match="limit"):
        await store.incident_list(limit=0)


async def test_gateway_incidents_are_kept_beside_the_connections_ones(
    stores: StoreFactory,
) -> None:
    writer, reader = stores(), stores()
    clock = FakeClock()
    incidents = IncidentService(writer, AuditLog(writer, clock), clock)
    seen = IncidentService(reader, AuditLog(reader, clock), clock)
    detector = Evidence(clock.now(), Action.THROTTLED, "412 recipients in 5 min", {})
    await incidents.record("a.gov.kz", Mode.ENFORCE, detector, "detector")
    listing = "gateway:2001:db8::25@zen.spamhaus.org"  # colons, "@": only a key
    suspect = Suspect("a.gov.kz", 1.25, 40, {"blocklisted": 12}, 1, "incident 1 (throttled)")
    facts = GatewayFacts(("2001:db8::25",), "zen.spamhaus.org", ("zen.spamhaus.org",), (suspect,))
    listed = Evidence(clock.now(), Action.LISTED, "listed: «Spamhaus SBL»", {"window_h": 6.0})
    opened, created = await incidents.record_gateway(listing, listed, "reputation", facts)
    burst = Evidence(clock.now(), Action.BLOCKLISTED_REPLIES, "4 replies", {})
    replies = GatewayFacts(("2001:db8::25",), "", ("Spamhaus",))
    await incidents.record_gateway("gateway:blocklisted-replies", burst, "reputation", replies)
    assert created and await seen.get(opened.id) == opened
    assert opened.suspects == (suspect,) and opened.kind == IncidentKind.GATEWAY
    assert [(i.kind.value, i.connection) for i in await seen.list()] == [
        ("gateway", "gateway:blocklisted-replies"),
        ("gateway", listing),
        ("connection", "a.gov.kz"),
    ]
    assert [i.id for i in await seen.list(connection=listing)] == [opened.id]
    joined, created = await incidents.record_gateway(listing, listed, "reputation", replies)
    assert (joined.id, created, joined.verdicts, joined.suspects) == (opened.id, False, 2, ())
    assert joined.blocklists == ("zen.spamhaus.org", "Spamhaus")
    await seen.close(opened.id, "api:noc", "delisted")
    fresh, created = await incidents.record_gateway(listing, listed, "reputation", facts)
    assert created and fresh.id == 4
    with pytest.raises(UsageError, match="subject"):
        await incidents.record_gateway("a.gov.kz", listed, "reputation", facts)


async def test_a_journal_numbers_its_entries_and_keeps_the_newest_cap(
    stores: StoreFactory,
) -> None:
    writer, reader = stores(), stores()
    version = await reader.version()
    assert await reader.journal_size("complaint") == (0, 0)
    assert await reader.journal_list("complaint") == []
    appended = [await writer.journal_append("complaint", f'{{"n": "№{n}"}}', 3) for n in range(5)]
    assert appended == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]
    assert await reader.journal_list("complaint") == [
        (5, '{"n": "№4"}'), (4, '{"n": "№3"}'), (3, '{"n": "№2"}'),
    ]  # fmt: skip
    assert await reader.journal_list("complaint", limit=2) == [
        (5, '{"n": "№4"}'),
        (4, '{"n": "№3"}'),
    ]
    assert await reader.journal_list("complaint", limit=2, before=4) == [(3, '{"n": "№2"}')]
    assert await reader.journal_list("complaint", before=1) == []
    assert await reader.journal_size("complaint") == (5, 3)  # 2 dropped
    assert await writer.journal_append("complaint", "{}", 1) == (6, 3)  # a lower cap drops more
    assert await reader.journal_list("other") == []
    assert await reader.version() == version  # journals are not the registry's business
    with pytest.raises(UsageError, match="cap"):
        await writer.journal_append("complaint", "{}", 0)
    with pytest.raises(UsageError, match="limit"):
        await reader.journal_list("complaint", limit=0)


async def test_concurrent_appends_get_distinct_numbers(stores: StoreFactory) -> None:
    writers = [stores() for _ in range(4)]
    done = await asyncio.gather(
        *(w.journal_append("complaint", str(i), 100) for i, w in enumerate(writers * 5))
    )
    assert sorted(seq for seq, _ in done) == list(range(1, 21))
    assert await writers[0].journal_size("complaint") == (20, 20)


async def test_a_generation_is_written_once_and_read_with_the_version(
    stores: StoreFactory,
) -> None:
    store = stores()
    assert await store.generation() == (None, 0)
    await store.add(plain("a.gov.kz"))
    assert await store.generation() == (None, 1)  # writes do not make one
    assert await store.init_generation("g1") == "g1"
    assert await stores().init_generation("g2") == "g1"  # another process: the first stays
    assert await stores().generation() == ("g1", await store.version())


async def test_a_restore_writes_a_copy_back_in_one_step(stores: StoreFactory) -> None:
    store = stores()
    await store.add(plain("a.gov.kz", domains=("a.gov.kz", "moved.kz")))  # the store's own
    await store.add(plain("extra.gov.kz"))  # one the copy does not hold: left as it is
    copy = [
        plain("a.gov.kz", "203.0.113.5"),  # without moved.kz, which b.gov.kz now owns
        dataclasses.replace(plain("b.gov.kz", domains=("b.gov.kz", "moved.kz")), org_name="B"),
    ]
    version = await store.restore_registry("g7", 57, copy)
    assert version == 57 and await stores().generation() == ("g7", 57)
    other = stores()
    assert [c.id for c in await other.list()] == ["a.gov.kz", "b.gov.kz", "extra.gov.kz"]
    assert await other.get("a.gov.kz") == copy[0]
    with pytest.raises(ConflictError, match=r"'moved\.kz' belongs to connection 'b\.gov\.kz'"):
        await other.add(plain("c.gov.kz", domains=("c.gov.kz", "moved.kz")))
    assert await store.restore_registry("g7", 10, copy) > 57  # always above what it was


async def test_a_restore_over_a_domain_of_another_writes_nothing(store: Store) -> None:
    await store.add(plain("other.gov.kz", domains=("other.gov.kz", "taken.kz")))
    before = await store.generation()
    with pytest.raises(ConflictError, match=r"'taken\.kz' belongs to connection 'other\.gov\.kz'"):
        await store.restore_registry(
            "g7", 57, [plain("a.gov.kz"), plain("b.gov.kz", domains=("b.gov.kz", "taken.kz"))]
        )
    assert await store.generation() == before
    assert [c.id for c in await store.list()] == ["other.gov.kz"]
