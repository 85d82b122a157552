"""The spool's SQL of the operators' filters and of the queue's shape, against a reference.

A spool holds 300 messages of several destination domains (some with two
recipients at one domain, some with mixed-case addresses), origins, senders,
states and ages (a `FakeClock`); every count the SQL gives is checked against
the same count worked out in Python from the messages as they were made. The tests only
read, so the module fills one spool for all of them (300 fsynced commits are most of
the time a test takes).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool
from relay.tls import domain_of
from ugem.core.clock import FakeClock
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import Criteria, MailFilter
from ugem.core.queue_shape import AGE_EDGES

NOW = 1_800_000_000.0
DOMAINS = ("mail.ru", "gmail.com", "yandex.kz", "MDAI.gov.kz", "edu.kz")
ORIGINS = ("a.gov.kz", "b.gov.kz", "")  # "": from the internet
SENDERS = ("a@a.gov.kz", "B@B.gov.kz", "")  # "": the null sender
EDGES = [m * 60.0 for m in AGE_EDGES]


def made(n: int, rng: random.Random) -> QueuedMessage:
    """Message n: 1 to 3 recipients (at most two domains, the first u<n>@ at the n-th
    domain), an age up to 10 hours."""
    first = DOMAINS[n % len(DOMAINS)]
    domains = [first, rng.choice([d for d in DOMAINS if d != first])]
    rcpts = [f"u{n}@{domains[0]}"]
    for i in range(rng.randint(0, 2)):
        rcpts.append(f"V{n}.{i}@{domains[i % 2]}".upper() if i else f"w{n}@{domains[1]}")
    data = b"Subject: %d\r\n\r\nbody\r\n" % n
    return QueuedMessage(
        id=f"Q{n:011d}", sender=rng.choice(SENDERS), rcpts=rcpts, data=data, size=len(data),
        connection=rng.choice(ORIGINS), client_ip="10.0.0.1",
        received_at=NOW - rng.uniform(0, 600 * 60), state=rng.choice(list(QueueState)),
    )  # fmt: skip


def bucket(msg: QueuedMessage) -> int:
    age = NOW - msg.received_at
    return next((i for i, edge in enumerate(EDGES) if age < edge), len(EDGES))


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def filled(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Spool, list[QueuedMessage]]]:
    rng = random.Random(15)
    msgs = [made(n, rng) for n in range(300)]
    path = tmp_path_factory.mktemp("spool-select") / "queue.db"
    spool = Spool(path, FakeClock(NOW), Metrics())
    await spool.open()
    try:
        for msg in msgs:
            await spool.commit(msg)
        yield spool, msgs
    finally:
        await spool.close()


async def test_the_shape_by_destination_counts_each_message_once_per_domain(
    filled: tuple[Spool, list[QueuedMessage]],
) -> None:
    spool, msgs = filled
    expected = Counter(
        (domain, bucket(m)) for m in msgs for domain in {domain_of(r) for r in m.rcpts}
    )
    rows, totals = await spool.shape("destination", EDGES, NOW, MailFilter())
    assert {(k, b): n for k, b, n in rows} == dict(expected)
    assert dict(totals) == dict(Counter(bucket(m) for m in msgs))
    assert {k for k, _, _ in rows} == {d.lower() for d in DOMAINS}  # any case: one row
    assert len({b for _, b, _ in rows}) == len(EDGES) + 1  # every bucket has mail


async def test_the_shape_by_connection_and_under_a_filter(
    filled: tuple[Spool, list[QueuedMessage]],
) -> None:
    spool, msgs = filled
    rows, _ = await spool.shape("connection", EDGES, NOW, MailFilter())
    assert {(k, b): n for k, b, n in rows} == dict(Counter((m.connection, bucket(m)) for m in msgs))
    held = MailFilter(states=("held",), domain="mail.ru")
    rows, totals = await spool.shape("connection", EDGES, NOW, held)
    chosen = [
        m for m in msgs
        if m.state == QueueState.HELD and "mail.ru" in {domain_of(r) for r in m.rcpts}
    ]  # fmt: skip
    assert sum(n for _, _, n in rows) == sum(n for _, n in totals) == len(chosen) > 0


@pytest.mark.parametrize(
    "criteria",
    [
        Criteria(state="deferred"),
        Criteria(connection=""),
        Criteria(sender="<>"),
        Criteria(sender="b@b.gov.kz"),
        Criteria(sender="@A.GOV.KZ"),
        Criteria(recipient="U7@Yandex.kz"),
        Criteria(recipient="@mdai.gov.kz"),
        Criteria(domain="yandex.kz", older_than="2h"),
        Criteria(newer_than="40m"),
        Criteria(state="held", connection="a.gov.kz", older_than="1h", newer_than="5h"),
    ],
    ids=lambda c: c.describe(),
)
async def test_the_filters_select_what_they_say(
    filled: tuple[Spool, list[QueuedMessage]], criteria: Criteria
) -> None:
    spool, msgs = filled
    where = criteria.at(NOW)
    expected = [m.id for m in msgs if matches(m, criteria)]
    assert expected, "the filter selects some of the messages"
    assert [m.id for m in await spool.list(limit=1000, where=where)] == expected
    assert await spool.count(where=where) == len(expected)
    page = await spool.list(limit=5, after=expected[0], where=where)
    assert [m.id for m in page] == expected[1:6]


def matches(msg: QueuedMessage, c: Criteria) -> bool:
    """The reference: what each field of `c` means, in Python."""
    age = NOW - msg.received_at
    rcpts = [r.lower() for r in msg.rcpts]
    return all(
        [
            c.state is None or msg.state == c.state,
            c.connection is None or msg.connection == c.connection,
            c.sender is None or _address(msg.sender.lower(), c.sender.lower().strip("<>")),
            c.recipient is None or any(_address(r, c.recipient.lower()) for r in rcpts),
            c.domain is None or c.domain in {domain_of(r) for r in rcpts},
            c.older_than is None or age >= _seconds(c.older_than),
            c.newer_than is None or age < _seconds(c.newer_than),
        ]
    )


def _address(address: str, wanted: str) -> bool:
    return address.endswith(wanted) if wanted.startswith("@") else address == wanted


def _seconds(duration: str) -> float:
    return float(duration[:-1]) * {"m": 60, "h": 3600}[duration[-1]]


async def test_holding_names_the_ids_a_spool_has(
    filled: tuple[Spool, list[QueuedMessage]],
) -> None:
    spool, msgs = filled
    ids = [msgs[3].id, "NOSUCH", msgs[1].id]
    assert await spool.holding(ids) == [msgs[3].id, msgs[1].id]
    assert await spool.holding([m.id for m in msgs]) == [m.id for m in msgs]  # in chunks
