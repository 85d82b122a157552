"""The web console in headless Chromium against a real node, with real SMTP traffic.

One browser and ONE node for the module (`tests.support.browser`;
`node_relaying_to`: mdai.gov.kz connected from 127.0.0.2, example.org and an
applicant's domain routed to one sink; DNS on a closed port, so the
application's DNS checks fail fast; retries a minute apart, so deferred mail
stays deferred while a test looks at it); the tests that share it each sign
in with their own token. An operator signs in with a token, finds the
connection, suspends it with a reason (confirming), and the next message
from its server gets 451 over SMTP; resumes it, and mail flows to the sink. A
viewer sees no action, and a POST forged with the viewer's own session and
CSRF token is refused 403; a POST without or with a wrong CSRF token is
refused. The language switch changes the page and is remembered. An
application received through the API is found in the inbox, checked (the
operator finds what the DNS could not), connected from its page, and its
notice reaches the sink and shows on the page. Mail deferred to a domain
nobody answers for is found on the Queue page, held with a reason (the
confirmation counts it first), and the hold is found in the Audit log, whose
chain is whole. A real burst against a node of its own on a fake clock
(`tests.support.burst`, mode enforce) opens an incident, which an operator
acknowledges and closes from its page, with comments, each confirmed; the
bursting connection's page draws its day against the usual the detector
learned. Every page passes the accessibility basics
(`tests.support.accessibility`) and is photographed to var/screenshots/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.accessibility import problems
from tests.support.browser import Browser, chromium_driver
from tests.support.burst import BURST, burst_scene
from tests.support.mail import read_notice
from tests.support.node import api_client, node_relaying_to, running_node, send_mail
from tests.support.sink import Sink, SinkMessage
from tests.support.waiting import eventually_read
from ugem.core.queue_filter import Criteria
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role, TokenService
from ugem.node import Node

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONN = "mdai.gov.kz"
SERVER = "127.0.0.2"
HOSTILE = "<script>alert(1)</script> spam run"
APPLICANT = "akimat.gov.kz"
POSTMASTER = "postmaster@sts.test"
NOBODY = "nobody.test"  # a destination nobody answers for: its mail is deferred
APPLICATION = {
    "number": "0417",
    "domain": APPLICANT,
    "domain_owner": "Akimat",
    "servers": ["127.0.0.3"],
    "org_name": "Қала әкімдігі",
    "kind": "local-government",
    "contacts": [{"full_name": "Сәрсенбаева Әлия", "email": f"it@{APPLICANT}"}],
    "language": "kk",
}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started = chromium_driver(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield started
    finally:
        started.quit()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mail_sink() -> AsyncIterator[Sink]:
    started = await Sink.start("127.0.0.1", 0)
    try:
        yield started
    finally:
        await started.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory, mail_sink: Sink) -> AsyncIterator[Node]:
    hop = f"{mail_sink.host}:{mail_sink.port}"
    delivery = {
        "routes": {"example.org": hop, APPLICANT: hop, NOBODY: "127.0.0.1:9"},
        "dns_servers": ["127.0.0.1:9"],  # the DNS readiness checks fail fast
        "dns_timeout": 0.2,
        "min_backoff": 60.0,  # deferred mail stays deferred while a test looks
        "max_backoff": 120.0,
    }
    where = tmp_path_factory.mktemp("node")
    config, _ = await node_relaying_to(
        where, mail_sink, CONN, (SERVER,), admin={"postmaster": POSTMASTER}, delivery=delivery
    )
    async with running_node(config) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def browser(driver: Any, node: Node) -> Browser:
    browser = Browser(driver, f"http://{node.config.admin.listen}")
    await browser.call(driver.delete_all_cookies)
    return browser


async def arrived(sink: Sink, rcpt: str) -> SinkMessage:
    """The first message the sink took for `rcpt`, once it has one."""
    await sink.wait_until(lambda: any(rcpt in m.rcpts for m in sink.messages), 15, rcpt)
    return next(m for m in sink.messages if rcpt in m.rcpts)


async def token(node: Node, name: str, role: Role) -> str:
    assert node.store is not None
    tokens = TokenService(node.store, AuditLog(node.store, node.clock), node.clock)
    return (await tokens.create(name, role, "test"))[1]


async def looked_at(browser: Browser, name: str) -> None:
    """The page shown passes the accessibility basics; its screenshot is written."""
    await browser.shoot(name)
    assert await browser.call(problems, browser.driver) == [], name


async def sign_in(browser: Browser, secret: str) -> None:
    await browser.open("/ui/")
    assert await browser.path() == "/ui/sign-in"
    await browser.type("#token", secret)
    await browser.click("form[action='/ui/sign-in'] button")
    assert await browser.path() == "/ui/"


async def confirmed(
    browser: Browser, field: str, text: str, form: str, name: str, done: str
) -> None:
    """Type `text` into `field`, submit `form`, confirm it on the next page (its screenshot
    named `confirm-<name>`), and land on `done`."""
    await browser.type(field, text)
    await browser.click(f"{form} button")
    assert "confirm" in (await browser.text("h1")).lower()
    await looked_at(browser, f"confirm-{name}")
    await browser.click("#confirm")
    assert await browser.path() == done


async def act(browser: Browser, action: str, reason: str) -> None:
    """Fill the action's form on the connection's page, then confirm it on the next page."""
    done = f"/ui/connections/{CONN}?done={action}"
    await confirmed(browser, f"#{action}-reason", reason, f"form.action-{action}", action, done)


async def test_an_operator_suspends_and_resumes_a_connection(
    browser: Browser, node: Node, mail_sink: Sink
) -> None:
    await browser.open("/ui/sign-in")
    await looked_at(browser, "sign-in")
    await sign_in(browser, await token(node, "aliya", Role.OPERATOR))
    overview = await browser.text()
    assert "Open incidents" in overview and "Last minute (to" in overview  # the index's rate
    assert "The gateway on the blocklists" in overview
    await looked_at(browser, "overview")

    await browser.click("nav a[href='/ui/connections']")
    await browser.type("#text", "mdai")
    await browser.click("form.filters button")
    assert "Found: 1" in await browser.text()
    await looked_at(browser, "connections")
    await browser.click(f"a[href='/ui/connections/{CONN}']")
    await looked_at(browser, "connection")

    await act(browser, "suspend", HOSTILE)
    assert await browser.text("#conn-state") == "suspended"
    assert await browser.text("#conn-reason") == HOSTILE  # shown as text, not run
    await looked_at(browser, "connection-suspended")
    refused = await send_mail(node.config, f"a@{CONN}", ["x@example.org"], SERVER)
    assert refused.code == 451, refused

    await act(browser, "resume", "cleaned up")
    assert await browser.text("#conn-state") == "connected"
    sent = await send_mail(node.config, f"a@{CONN}", ["x@example.org"], SERVER)
    assert sent.code == 250, sent
    delivered = await arrived(mail_sink, "x@example.org")
    assert delivered.rcpts == ["x@example.org"]
    assert node.store is not None
    actors = {r.entry.action: r.entry.actor for r in await node.store.audit_records(CONN, 50)}
    assert actors["connection.suspend"] == actors["connection.resume"] == "api:aliya"


async def test_a_viewer_can_only_look_and_forged_posts_are_refused(
    browser: Browser, node: Node
) -> None:
    await sign_in(browser, await token(node, "nurlan", Role.VIEWER))
    await browser.open(f"/ui/connections/{CONN}")
    assert await browser.all("form[action*='/ui/connections/']") == []
    assert "Actions" not in await browser.text()
    await looked_at(browser, "connection-viewer")

    csrf = await browser.call(
        lambda: browser.driver.find_element("css selector", "input[name=csrf]").get_attribute(
            "value"
        )
    )
    cookies = {"ugem_ui": await browser.cookie("ugem_ui") or ""}
    forged = {"csrf": csrf, "reason": "forged", "confirm": "yes"}
    english = {"Accept-Language": "en"}
    async with httpx.AsyncClient(base_url=browser.base, cookies=cookies, headers=english) as client:
        for action in ("suspend", "disconnect"):
            answer = await client.post(f"/ui/connections/{CONN}/{action}", data=forged)
            assert answer.status_code == 403, answer.text
            assert "needs the" in answer.text
        for bad in ({}, {"csrf": "0" * 64}):
            form = {"lang": "kk", "next": "/ui/"} | bad
            assert (await client.post("/ui/language", data=form)).status_code == 403
    conn = await node.services.connections.get(CONN) if node.services else None
    assert conn is not None and conn.state == "connected"


async def test_the_language_switch_is_remembered(browser: Browser, node: Node) -> None:
    await sign_in(browser, await token(node, "dana", Role.ADMIN))
    await browser.open("/ui/connections")
    assert await browser.text("h1") == "Connections"
    option = await browser.find("#lang-choice option[value=kk]")
    await browser.call(option.click)  # chooses; the page stays
    await browser.click("form[action='/ui/language'] button")
    assert await browser.path() == "/ui/connections"
    assert await browser.text("h1") == "Қосылымдар"
    await browser.open(f"/ui/connections/{CONN}")
    assert "Әрекеттер" in await browser.text()  # "Actions", on another page
    assert await browser.cookie("ugem_lang") == "kk"
    html_lang = await browser.call(
        lambda: browser.driver.find_element("css selector", "html").get_attribute("lang")
    )
    assert html_lang == "kk"
    await looked_at(browser, "connection-kk")


async def step(browser: Browser, form: str, name: str, done: str) -> None:
    """Submit `form` as it is filled, confirm it on the next page (its screenshot named
    `confirm-<name>`), and land on `done`."""
    await browser.click(f"{form} button")
    assert "confirm" in (await browser.text("h1")).lower()
    await looked_at(browser, f"confirm-{name}")
    await browser.click("#confirm")
    assert await browser.path() == done


async def test_an_application_is_decided_from_its_page_and_its_notice_is_mailed(
    browser: Browser, node: Node, mail_sink: Sink
) -> None:
    async with api_client(node, "intake", Role.OPERATOR) as api:
        received = await api.post("/v1/applications", json=APPLICATION)
        assert received.status_code == 201, received.text
    page = f"/ui/applications/{received.json()['id']}"
    await sign_in(browser, await token(node, "yerlan", Role.OPERATOR))
    await browser.click("nav a[href='/ui/applications']")
    assert "№ 0417" in await browser.text() and "5 working days" in await browser.text()
    await looked_at(browser, "applications")
    await browser.click(f"a[href='{page}']")
    await looked_at(browser, "application")

    await step(browser, "form.step-checks", "checks", f"{page}?done=checks")
    checks = await browser.text("#checks")
    assert "not global: 127.0.0.3" in checks and "failed" in checks  # and the DNS's
    for option in await browser.all("select[name^='check.'] option[value=ok]"):
        await browser.call(option.click)  # the operator finds what the DNS could not
    await browser.type("#check-note", "checked over the STS channel")
    await step(browser, "form.step-checks", "findings", f"{page}?done=checks")
    await step(browser, "form.decide-connect", "connect", f"{page}?done=decision")
    assert await browser.text("#app-state") == "connected"

    notice = read_notice((await arrived(mail_sink, f"it@{APPLICANT}")).data)
    assert "№ 0417 өтінім" in notice.parts[0]
    await eventually_read(
        lambda: browser.open(page), lambda _: bool(browser.driver.find_elements("id", "notices"))
    )
    assert "delivered" in await browser.text("#notices")
    await looked_at(browser, "application-connected")
    connected = await node.services.connections.get(APPLICANT) if node.services else None
    assert connected is not None and connected.org_name == "Қала әкімдігі"


async def test_deferred_mail_is_held_from_the_queue_page_and_found_in_the_audit_log(
    browser: Browser, node: Node
) -> None:
    sent = await send_mail(node.config, f"a@{CONN}", [f"x@{NOBODY}"], SERVER)
    assert sent.code == 250, sent
    assert node.services is not None
    queue = node.services.queue
    await eventually_read(
        lambda: queue.list(Criteria(domain=NOBODY, state="deferred")), bool, 15, "deferred"
    )
    await sign_in(browser, await token(node, "marat", Role.OPERATOR))
    await browser.click("nav a[href='/ui/queue']")
    assert NOBODY in await browser.text("#queue-shape")
    await looked_at(browser, "queue")
    await browser.type("#q-domain", NOBODY)
    await browser.click("form.filters button")
    assert "Messages (1)" in await browser.text()
    await browser.type("#q-reason", "<b>nobody</b> answers")
    await browser.click("form.queue-actions button")
    assert "1 messages will be held" in await browser.text()
    await looked_at(browser, "confirm-hold")
    await browser.click("#confirm")
    assert await browser.text("#queue-done") == "Held: 1."
    [held] = await queue.list(Criteria(domain=NOBODY))
    assert (held.state, held.hold_reason) == ("held", "<b>nobody</b> answers")

    await browser.click("nav a[href='/ui/audit']")
    assert "The hash chain is whole" in await browser.text("#audit-chain")
    await browser.type("#a-action", "queue.bulk-hold")
    await browser.click("form.filters button")
    rows = await browser.text("#audit-list")
    assert "api:marat" in rows and "<b>nobody</b> answers" in rows
    await looked_at(browser, "audit")


async def move(browser: Browser, name: str, comment: str) -> None:
    """Acknowledge or close the incident shown, with `comment`, confirming it."""
    done = f"/ui/incidents/1?done={name}"
    await confirmed(browser, f"#{name}-comment", comment, f"form.move-{name}", name, done)


async def test_an_incident_of_a_real_burst_is_acknowledged_and_closed(
    driver: Any, tmp_path: Path
) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        await scene.history()
        assert await scene.burst() is not None, "the burst was never refused"
        browser = Browser(driver, f"http://{scene.config.admin.listen}")
        await browser.call(driver.delete_all_cookies)
        await sign_in(browser, await token(scene.node, "aliya", Role.OPERATOR))

        await browser.click("nav a[href='/ui/incidents']")
        assert "Open (1)" in await browser.text()
        await looked_at(browser, "incidents")
        await browser.click("a[href='/ui/incidents/1']")
        assert "never seen" in await browser.text()  # the detector's finding, as evidence
        assert "recipient domains in the last 5 min" in await browser.text()  # its numbers
        await looked_at(browser, "incident")

        await move(browser, "ack", "looking at it")
        assert await browser.text("#incident-state") == "acknowledged"
        await move(browser, "close", "<b>owner</b> cleaned the server")
        assert await browser.text("#incident-state") == "closed"
        assert await browser.text("#incident-comment") == "<b>owner</b> cleaned the server"
        await looked_at(browser, "incident-closed")
        assert scene.node.services is not None
        incident = await scene.node.services.incidents.get(1)
        assert (incident.acknowledged_by, incident.closed_by) == ("api:aliya", "api:aliya")

        await browser.click(f"a[href='/ui/connections/{BURST}']")
        chart = await browser.find("#traffic svg.chart")
        assert "usual" in await browser.call(lambda: chart.get_attribute("textContent"))
        await looked_at(browser, "connection-traffic")
