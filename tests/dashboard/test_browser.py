"""The dashboard in Debian's Chromium, driven by Playwright, against a real uvicorn.

Seeded as a shop would: orders through the webhook, mail through the dispatcher to the SMTP
sink, an open and a click fetched, the rollup job run. Then uvicorn serves the same app on a
socket (in the test's event loop, so it shares the test's database and clock), and the
browser signs in with the form, picks the span, and reads the page. Any request to another
host fails the test. The full-page screenshot goes to a temporary folder and to
AFTERSALE_SCREENSHOT_DIR when set (the path is printed).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from httpx import AsyncClient

from app.dashboard import figures
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.browser.harness import (  # noqa: F401 (served, screenshot_dirs: fixtures)
    BROWSER_ARGS,
    CHROMIUM,
    Browser,
    require_browser,
    screenshot_dirs,
    served,
)
from tests.conftest import TEST_API_KEY, Api, FrozenClock, Visitor
from tests.dashboard.conftest import api_figures, seed
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import SPAN

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

pytestmark = pytest.mark.slow
# The page as wide as the window (the table scrolls in its own box): usable on a phone.
_PAGE_WIDTH = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
# Each chart's series: its legend label and whether its line has a drawn path.
_SERIES = """svg => Array.from(svg.querySelectorAll(".legends .legend text")).map(
  (text, index) => [text.textContent,
    !!svg.querySelector(`.series.serie-${index} path.line[d^="M"]`)])"""


async def test_the_dashboard_in_chromium(
    client: AsyncClient,
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    overview, [row] = await api_figures(client, api)
    blocked: list[str] = []
    errors: list[str] = []

    async def only_ours(route: Route) -> None:
        if route.request.url.startswith(served + "/"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        # executable_path: Debian's Chromium; Playwright never looks for, or fetches, its own.
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.route("**/*", only_ours)
            page.on("console", lambda message: _console_error(message, errors))
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

            await page.goto(f"{served}/dashboard")
            assert page.url == f"{served}/dashboard/login"
            await page.fill("#api_key", TEST_API_KEY)
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert page.url == f"{served}/dashboard"
            # The span of the API's figures, chosen with the page's own form.
            await page.fill("input[name=from]", SPAN["from"])
            await page.fill("input[name=to]", SPAN["to"])
            async with page.expect_navigation():
                await page.click("form.filters button[type=submit]")
            assert "from=2026-11-01" in page.url and "to=2026-11-30" in page.url

            await _check_figures(page, overview, row)
            await _check_charts(page, shape="wide", min_width=800)
            await _screenshot(page, screenshot_dirs, "dashboard-1280.png")
            # At 1400 px the whole table shows, NPS (its last column) too; then the checks
            # every console page passes (fit, axe-core, tap targets).
            await page.set_viewport_size({"width": 1400, "height": 900})
            nps = await page.locator("#by-rule + .table thead th:last-child").bounding_box()
            assert nps is not None and nps["x"] + nps["width"] <= 1400, nps
            await Browser(page=page, base=served, folders=screenshot_dirs).check_page("stats")
            await page.set_viewport_size({"width": 1280, "height": 900})

            # A phone: the page fits its width, the narrow charts are drawn instead.
            await page.set_viewport_size({"width": 375, "height": 800})
            scroll_width, width = await page.evaluate(_PAGE_WIDTH)
            assert scroll_width <= width, f"wider than a phone: {scroll_width} > {width}"
            await _check_charts(page, shape="narrow", min_width=300)
            await _screenshot(page, screenshot_dirs, "dashboard-375.png")
        finally:
            await browser.close()
    assert blocked == [], f"the page asked other hosts: {blocked}"
    assert errors == []


def _console_error(message: Any, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


async def _check_figures(page: Page, overview: dict[str, Any], row: dict[str, Any]) -> None:
    """The table's cells and the totals' cards say what the API says."""
    assert row["sent"] == 2 and row["opened"] == 1 and row["converted"] == 1  # real figures
    cells = f'tr[data-rule="{row["rule"]}"] td'
    expected = {
        "sent": figures.count(row["sent"]),
        "opened": figures.count(row["opened"]),
        "opened_machine": figures.count(row["opened_machine"]),
        "clicked": figures.count(row["clicked"]),
        "clicked_machine": figures.count(row["clicked_machine"]),
        "converted": figures.count(row["converted"]),
        "conversion_rate": figures.rate(row["conversion_rate"]),
        "revenue": ", ".join(figures.money(row["revenue"])),
        "unsubscribed": figures.count(row["unsubscribed"]),
        "bounced": figures.count(row["bounced"]),
        "nps": "—",
    }
    shown = {
        field: (await page.locator(f'{cells}[data-field="{field}"]').inner_text()).strip()
        for field in expected
    }
    assert shown == expected
    for field in ("sent", "opened", "clicked", "converted", "opened_machine"):
        card = page.locator(f'#overview .card[data-field="{field}"] .value')
        assert (await card.inner_text()).strip() == figures.count(overview[field]), field
    revenue = page.locator('#overview .card[data-field="revenue"] .value')
    assert (await revenue.inner_text()).strip() == "EUR 49.80"


async def _check_charts(page: Page, *, shape: str, min_width: float) -> None:
    """Three charts drawn, each with its series' lines and legends, at a readable size."""
    wanted = {
        "activity": ["Sent", "Opened", "Clicked", "Converted"],
        "revenue-EUR": ["EUR"],
        "machines": ["Opened by machines", "Clicked by machines"],
    }
    for name, labels in wanted.items():
        svg = page.locator(f'figure[data-chart="{name}"] .{shape} svg')
        assert await svg.is_visible(), (name, shape)
        box = await svg.bounding_box()
        assert box is not None and box["width"] > min_width and box["height"] > 200, (name, box)
        series = await svg.evaluate(_SERIES)
        assert series == [[label, True] for label in labels], (name, shape)


async def _screenshot(page: Page, folders: list[Path], name: str) -> None:
    shot = folders[0] / name
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    for folder in folders[1:]:
        shutil.copy(shot, folder / name)
    print(f"dashboard screenshot: {shot}")
