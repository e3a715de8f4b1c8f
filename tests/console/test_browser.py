"""Every console page in headless Chromium: fits 1400 px and 390 px, screenshots, axe-core
finds no serious or critical violation, controls are big enough to tap (tests/browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.browser.harness import console, screenshot_dirs, served  # noqa: F401
from tests.conftest import FrozenClock
from tests.console.test_queue import RULES, _orders
from tests.outbox.conftest import use_rules

pytestmark = pytest.mark.slow


async def test_the_console_pages_in_chromium(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    tmp_path: Path,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await _orders(client, "9001", "9002", "9003")
    clock.advance(minutes=30)
    async with console(served, screenshot_dirs, check_login=True) as browser:
        await browser.check_page("stats")
        await browser.open("/dashboard/queue")
        assert await browser.page.locator("#rules tbody tr").count() == 5  # 4 rules, totals
        await browser.check_page("queue")
        # The menu leads to every page, the current one marked.
        await browser.page.click("nav >> text=Stats")
        assert browser.page.url == f"{served}/dashboard"
        current = browser.page.locator('nav a[aria-current="page"]')
        assert await current.inner_text() == "Stats"


async def test_the_messages_pages_in_chromium(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    tmp_path: Path,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await _orders(client, "9101", "9102")
    clock.advance(minutes=30)
    assert (await dispatcher.run_once()).outcomes == {"sent": 4}
    async with console(served, screenshot_dirs) as browser:
        await browser.open("/dashboard/messages")
        assert await browser.page.locator("#messages tbody tr").count() == 8
        await browser.check_page("messages")
        # A sent message: its facts, timeline, the email in its frame, the text part.
        await browser.page.click("#messages tbody tr:nth-child(5) a")
        assert "/dashboard/messages/" in browser.page.url
        frame = browser.page.frame_locator("iframe.email")
        assert "Thank you for your order" in (await frame.locator("body").text_content() or "")
        assert await browser.page.locator("#timeline li").count() >= 3
        await browser.check_page("message")
        # A scheduled one, with its buttons; sent now, it says so.
        await browser.open("/dashboard/messages?status=scheduled")
        await browser.page.click("#messages tbody tr:first-child a")
        await browser.check_page("message-scheduled")
        async with browser.page.expect_navigation():
            await browser.page.click("text=Send now")
        assert browser.page.url.endswith("?done=sent-now")
        assert await browser.page.locator("p.done").inner_text() == (
            "Due now: the worker's next run takes it."
        )
