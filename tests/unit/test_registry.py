"""The registry's in-memory view: lookups by address and domain, reloads, state changes,
its copy on disk and the stores it refuses (empty, another generation, older).

The registry runs over a real SqliteStore (and, for the reload rule, over a
real Redis too) with a FakeClock; a change made through a second store object
stands for the CLI or another node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.errors import NotFoundError, StoreError, StoreRefused
from ugem.core.model import Connection, ConnState
from ugem.core.registry import Registry
from ugem.core.registry_copy import CopyFile, RegistryCopy, read_copy
from ugem.core.registry_watch import UNREACHABLE
from ugem.core.store import Store, open_store

Opener = Callable[[], Store]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Opener]:
    async with _opener(f"sqlite:///{tmp_path / 'registry.db'}") as make:
        yield make


class _opener:
    """Opens store objects on one URL and closes them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[Store] = []

    def __call__(self) -> Store:
        self.opened.append(open_store(self.url))
        return self.opened[-1]

    async def __aenter__(self) -> _opener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _registry(store: Store, clock: FakeClock, *conns: Connection) -> Registry:
    for conn in conns:
        await store.add(conn)
    registry = Registry(store, clock)
    await registry.sync()
    return registry


def _id(conn: Connection | None) -> str | None:
    return None if conn is None else conn.id


async def test_exact_ipv4_and_ipv6_hosts(stores: Opener, clock: FakeClock) -> None:
    registry = await _registry(
        stores(), clock, plain("a.gov.kz", "192.0.2.10"), plain("b.gov.kz", "2001:db8::25")
    )
    assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"
    assert _id(registry.by_address("2001:db8::25")) == "b.gov.kz"
    assert _id(registry.by_address("2001:DB8:0::25")) == "b.gov.kz"  # any spelling
    assert registry.by_address("192.0.2.11") is None
    assert registry.by_address("2001:db8::26") is None
    assert registry.by_address("not an address") is None


async def test_cidr_longest_prefix_wins(stores: Opener, clock: FakeClock) -> None:
    registry = await _registry(
        stores(),
        clock,
        plain("wide.gov.kz", "10.0.0.0/8", "2001:db8::/32"),
        plain("narrow.gov.kz", "10.1.0.0/16", "2001:db8:aa::/48"),
        plain("host.gov.kz", "10.1.2.3"),
    )
    assert _id(registry.by_address("10.1.2.3")) == "host.gov.kz"
    assert _id(registry.by_address("10.1.9.9")) == "narrow.gov.kz"
    assert _id(registry.by_address("10.200.0.1")) == "wide.gov.kz"
    assert _id(registry.by_address("2001:db8:aa::1")) == "narrow.gov.kz"
    assert _id(registry.by_address("2001:db8:bb::1")) == "wide.gov.kz"
    assert registry.by_address("11.0.0.1") is None
    assert registry.by_address("2001:db9::1") is None


async def test_ipv4_mapped_ipv6_is_the_ipv4_address(stores: Opener, clock: FakeClock) -> None:
    """A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d."""
    registry = await _registry(stores(), clock, plain("a.gov.kz", "192.0.2.10"))
    assert _id(registry.by_address("::ffff:192.0.2.10")) == "a.gov.kz"
    await stores().add(plain("net.gov.kz", "10.1.0.0/16"))
    await registry.sync()
    assert _id(registry.by_address("::ffff:192.0.2.10")) == "a.gov.kz"
    assert _id(registry.by_address("::ffff:10.1.0.7")) == "net.gov.kz"


async def test_disconnected_is_not_found_suspended_is(stores: Opener, clock: FakeClock) -> None:
    gone = dataclasses.replace(plain("gone.gov.kz", "192.0.2.1"), state=ConnState.DISCONNECTED)
    held = dataclasses.replace(plain("held.gov.kz", "192.0.2.2"), state=ConnState.SUSPENDED)
    registry = await _registry(stores(), clock, gone, held)
    assert registry.by_address("192.0.2.1") is None
    assert registry.by_domain("gone.gov.kz") is None
    assert _id(registry.get("gone.gov.kz")) == "gone.gov.kz"  # still known by id
    assert _id(registry.by_address("192.0.2.2")) == "held.gov.kz"
    assert _id(registry.by_domain("held.gov.kz")) == "held.gov.kz"


@pytest.mark.parametrize(
    "spelling",
    [
        "minfin.gov.kz",
        "MINFIN.Gov.KZ",
        "minfin.gov.kz.",
        "минфин.қаз",
        "МИНФИН.ҚАЗ.",
        "xn--h1aakfb4b.xn--80ao21a",
    ],
)
async def test_by_domain_any_spelling(stores: Opener, clock: FakeClock, spelling: str) -> None:
    conn = plain("minfin.gov.kz", domains=("minfin.gov.kz", "минфин.қаз"))
    registry = await _registry(stores(), clock, conn)
    assert _id(registry.by_domain(spelling)) == "minfin.gov.kz"


@pytest.mark.parametrize(
    "domain", ["other.kz", "gov.kz", "sub.minfin.gov.kz", "", "a..kz", "minfin.gov.kz.."]
)
async def test_by_domain_of_others_is_none(stores: Opener, clock: FakeClock, domain: str) -> None:
    registry = await _registry(stores(), clock, plain("minfin.gov.kz"))
    assert registry.by_domain(domain) is None


async def _reload_rule(make: Opener, clock: FakeClock) -> None:
    """A change through another store object is seen after the next sync(), not before."""
    registry = await _registry(make(), clock, plain("a.gov.kz", "192.0.2.10"))
    other = make()  # the CLI, the API or another node
    await other.add(plain("b.gov.kz", "192.0.2.20"))
    assert registry.by_address("192.0.2.20") is None
    await registry.sync()
    assert _id(registry.by_address("192.0.2.20")) == "b.gov.kz"
    await other.put(
        dataclasses.replace(plain("a.gov.kz", "192.0.2.10"), state=ConnState.DISCONNECTED)
    )
    await registry.sync()
    assert registry.by_address("192.0.2.10") is None
    await other.delete("b.gov.kz")
    await registry.sync()
    assert registry.get("b.gov.kz") is None
    assert registry.by_domain("b.gov.kz") is None


async def test_change_by_another_store_seen_after_sync(stores: Opener, clock: FakeClock) -> None:
    await _reload_rule(stores, clock)


async def test_change_by_another_redis_client_seen_after_sync(
    redis_url: str, clock: FakeClock
) -> None:
    async with _opener(redis_url) as make:
        await _reload_rule(make, clock)


async def test_set_state_audits_and_tells_listeners(stores: Opener, clock: FakeClock) -> None:
    store = stores()
    registry = await _registry(store, clock, plain("a.gov.kz", "192.0.2.10"), plain("b.gov.kz"))
    calls: list[tuple[Connection | None, Connection]] = []

    async def listener(old: Connection | None, new: Connection) -> None:
        calls.append((old, new))

    registry.on_change(listener)
    clock.advance(60)
    new = await registry.set_state("a.gov.kz", ConnState.SUSPENDED, "rate 40x", "detector")
    assert (new.state, new.state_reason, new.state_changed_at) == (
        ConnState.SUSPENDED,
        "rate 40x",
        clock.now(),
    )
    assert [(old.state if old else None, n.state) for old, n in calls] == [
        (ConnState.CONNECTED, ConnState.SUSPENDED)
    ]  # b.gov.kz did not change: its listener call would be a false alarm
    assert registry.get("a.gov.kz") == new
    assert await stores().get("a.gov.kz") == new
    [entry] = await store.audit_log("a.gov.kz")
    assert (entry.ts, entry.actor, entry.action, entry.reason) == (
        clock.now(),
        "detector",
        "connection.suspend",
        "rate 40x",
    )


async def test_set_state_of_unknown_id_is_not_found(stores: Opener, clock: FakeClock) -> None:
    registry = await _registry(stores(), clock)
    with pytest.raises(NotFoundError, match=r"nobody\.gov\.kz"):
        await registry.set_state("nobody.gov.kz", ConnState.SUSPENDED, "x", "cli:test")


async def test_store_failure_in_sync_keeps_last_view(stores: Opener, clock: FakeClock) -> None:
    store = stores()
    registry = await _registry(store, clock, plain("a.gov.kz", "192.0.2.10"))
    await store.close()  # the store is gone: every call fails
    with pytest.raises(StoreError):
        await registry.sync()
    assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"
    assert _id(registry.by_domain("a.gov.kz")) == "a.gov.kz"


async def test_a_fresh_store_gets_a_generation_and_each_reload_a_copy(
    tmp_path: Path, stores: Opener, clock: FakeClock
) -> None:
    store = stores()
    await store.add(plain("a.gov.kz", "192.0.2.10"))
    copies = CopyFile(tmp_path / "registry-copy.json")
    registry = Registry(store, clock, copy=copies)
    await registry.sync()
    generation, version = await store.generation()
    assert generation is not None and registry.generation == generation
    assert read_copy(copies.path) == RegistryCopy(
        generation, version, clock.now(), (plain("a.gov.kz", "192.0.2.10"),)
    )
    await stores().add(plain("b.gov.kz", "192.0.2.20"))
    clock.advance(5)
    await registry.sync()
    copy = read_copy(copies.path)
    assert copy is not None and (copy.version, copy.read_at) == (version + 1, clock.now())
    assert [c.id for c in copy.connections] == ["a.gov.kz", "b.gov.kz"]

    started = Registry(stores(), clock, copy=CopyFile(copies.path))  # a node's next start
    assert started.load_copy() == copy
    assert _id(started.by_address("192.0.2.20")) == "b.gov.kz"
    assert (started.generation, started.version) == (generation, version + 1)


async def test_a_store_that_lost_its_data_is_refused_and_the_view_kept(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = tmp_path / "registry.db"
    async with _opener(f"sqlite:///{db}") as make:
        registry = await _registry(make(), clock, plain("a.gov.kz", "192.0.2.10"))
    db.unlink()  # restarted without its data: a new, empty store
    async with _opener(f"sqlite:///{db}") as make:
        registry.store = make()
        with pytest.raises(StoreRefused, match="no generation: it is empty or lost its data"):
            await registry.sync()
        assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"
        assert await registry.store.generation() == (None, 0)  # nothing written into it


async def test_another_generation_an_older_version_or_no_connection_is_refused(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = tmp_path / "registry.db"
    async with _opener(f"sqlite:///{db}") as make:
        store = make()
        registry = await _registry(store, clock, plain("a.gov.kz", "192.0.2.10"))
        generation, version = await store.generation()

        def meddle(sql: str, *args: object) -> None:
            with contextlib.closing(sqlite3.connect(db)) as db_, db_:
                db_.execute(sql, args)

        meddle("UPDATE generation SET id = 'another'")
        with pytest.raises(StoreRefused, match="another generation, another"):
            await registry.sync()
        meddle("UPDATE generation SET id = ?", generation)
        meddle("UPDATE meta SET value = ? WHERE key = 'version'", version - 1)
        with pytest.raises(StoreRefused, match=f"older: version {version - 1}"):
            await registry.sync()
        meddle("UPDATE meta SET value = ? WHERE key = 'version'", version)
        await registry.sync()  # the same store again: taken
        await make().delete("a.gov.kz")
        with pytest.raises(StoreRefused, match="no connection at version"):
            await registry.sync()
        assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"


async def test_set_state_while_the_store_is_down_changes_nothing(
    stores: Opener, clock: FakeClock
) -> None:
    store = stores()
    registry = await _registry(store, clock, plain("a.gov.kz", "192.0.2.10"))
    registry.watch._trouble(UNREACHABLE, "redis store x: Connection refused")
    with pytest.raises(StoreError, match=r"the store is unreachable \(redis store x: Conn"):
        await registry.set_state("a.gov.kz", ConnState.SUSPENDED, "rate 40x", "detector")
    conn = await store.get("a.gov.kz")
    assert conn is not None and conn.state == ConnState.CONNECTED
