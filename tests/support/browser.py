"""Headless Chromium driven by Selenium, for the web console's browser tests.

`chromium_driver(profile)` starts Debian's `chromium` through its
`chromium-driver` (both installed by tests/install-system-deps.sh; without
them, or without the selenium package, the test is skipped with the reason,
or fails under UGEM_TEST_REQUIRE_PEERS=1: `tests.support.peers`) with the
flags of a quiet, offline browser and a fresh profile in `profile`; it never
lets Selenium look for or download a driver. `Browser` wraps the driver for
tests that run on an event loop (an in-process node answers on that loop
while the browser waits): every call goes to a thread. `shoot(name)` writes a
screenshot to var/screenshots/<name>.png for a person to look at. `click`
waits for the page the click leads to (an event: the old page gone, the new
one loaded), so the next look is at the new page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.peers import require, require_module

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
    "--window-size=1280,1000",
)
T = TypeVar("T")
LOAD_TIMEOUT = 10.0  # seconds a page may take to load; it fails the test beyond


def _gone(old: Any) -> Callable[[Any], bool]:
    """A wait's condition: the element `old` left the document. Chromedriver says so with a
    stale element, or, while the next page is being built, with "Node with given id does
    not belong to the document" (selenium's own `staleness_of` lets that one escape)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def gone(_driver: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return gone


def _loaded(driver: Any) -> bool:
    return bool(driver.execute_script("return document.readyState") == "complete")


def chromium_driver(profile: Path) -> Any:
    """A started Chrome WebDriver session of Debian's chromium, profile in `profile`."""
    why = "the web console's browser tests need Debian's chromium and chromium-driver"
    binary = require("chromium", why)
    driver_path = require("chromedriver", why)
    webdriver = require_module("selenium.webdriver", "the browser tests need selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    service = webdriver.ChromeService(executable_path=driver_path)
    return webdriver.Chrome(options=options, service=service)


class Browser:
    """The driver's calls, each in a thread, against the console at `base`."""

    def __init__(self, driver: Any, base: str = "") -> None:
        self.driver = driver
        self.base = base

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str) -> None:
        await self.call(self.driver.get, self.base + path)

    async def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return await self.call(self.driver.find_element, By.CSS_SELECTOR, css)

    async def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return await self.call(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def type(self, css: str, text: str) -> None:
        element = await self.find(css)
        await self.call(element.clear)
        await self.call(element.send_keys, text)

    async def click(self, css: str) -> None:
        """Click what `css` finds and wait for the page it leads to (the old one's <html>
        gone, the new one loaded): a click here always navigates."""
        from selenium.webdriver.support.wait import WebDriverWait

        old = await self.find("html")
        await self.call((await self.find(css)).click)
        wait = WebDriverWait(self.driver, LOAD_TIMEOUT)
        await self.call(wait.until, _gone(old))
        await self.call(wait.until, _loaded)

    async def text(self, css: str = "main") -> str:
        return str(await self.call(lambda: self.driver.find_element("css selector", css).text))

    async def path(self) -> str:
        url = str(await self.call(lambda: self.driver.current_url))
        return url.removeprefix(self.base)

    async def cookie(self, name: str) -> str | None:
        found = await self.call(self.driver.get_cookie, name)
        return None if found is None else str(found["value"])

    async def shoot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        assert await self.call(self.driver.save_screenshot, str(path)), name
        return path
