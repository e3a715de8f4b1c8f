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
