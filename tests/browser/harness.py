"""Console pages in Debian's Chromium, driven by Playwright, against a real uvicorn.

What every console page's browser test does (`check_page`): at 1400 px and at 390 px the
page fits the window's width, a full-page screenshot is taken, axe-core (from the npm
registry, tests/browser/package.json) finds no serious or critical violation, and on the
phone every control is at least 44 by 44 px. Any request to another host, any console
error and any script error fail the test (`Browser.problems`).

Screenshots go to a temporary folder and to AFTERSALE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import TEST_API_KEY
from tests.smtp_sink import free_port

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# Headless, and nothing of its own online.
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE, PHONE = 1400, 390
TAP = 44  # px: the least a control measures on a phone (WCAG 2.5.5, Apple's and Google's guides)
_PAGE_WIDTH = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
# axe's findings that matter here; the rest (moderate, minor) are advice.
_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""
# Every visible control smaller than `tap` in either direction: a link inside a sentence (a
# paragraph or a list item, the menu's aside) is exempt (WCAG's inline exception), a checkbox
# or radio counts by its label.
_SMALL_TARGETS = """tap => {
  const controls = document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary");
  const small = [];
  for (const element of controls) {
    if (element.tagName === "A" && element.closest("p, li:not(nav li)")) continue;
    let box = element;
    if (element.type === "checkbox" || element.type === "radio") {
      box = element.closest("label") || element;
    }
    const rect = box.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (rect.width === 0 || style.visibility === "hidden" || style.display === "none") continue;
    if (rect.width < tap || rect.height < tap) {
      const text = (element.textContent || element.name || "").trim().slice(0, 30);
      const size = `${Math.round(rect.width)}x${Math.round(rect.height)}`;
      small.push(`${element.tagName.toLowerCase()} "${text}" ${size}`);
    }
  }
  return small;
}"""


def require_browser() -> None:
    """Skip (fail under CI) when Chromium, Playwright or axe-core is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -c constraints.txt -e '.[dev]')")
    if not AXE.exists():
        missing.append(f"{AXE} (npm ci --prefix tests/browser; `make test` runs it)")
    if missing:
        reason = "missing: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI requires them")
        pytest.skip(reason)


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app on a real socket, through uvicorn (in the test's loop: same database, clock)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
def screenshot_dirs(tmp_path: Path) -> list[Path]:
    folders = [tmp_path / "screenshots"]
    extra = os.environ.get("AFTERSALE_SCREENSHOT_DIR")
    if extra:
        folders.append(Path(extra))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


@dataclass
class Browser:
    """A signed-in console tab and what went wrong on the way."""

    page: Page
    base: str
    folders: list[Path]
    problems: list[str] = field(default_factory=list)

    async def open(self, path: str) -> None:
        response = await self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response)

    async def check_page(self, name: str) -> None:
        """The page as it is now: fits, screenshots, accessible, big enough to tap."""
        for width in (WIDE, PHONE):
            await self.page.set_viewport_size({"width": width, "height": 900})
            scroll_width, client_width = await self.page.evaluate(_PAGE_WIDTH)
            assert scroll_width <= client_width, f"{name} at {width} px overflows: {scroll_width}"
            await self.screenshot(f"{name}-{width}.png")
            violations = await self.axe()
            assert violations == [], f"{name} at {width} px:\n" + json.dumps(violations, indent=1)
            if width == PHONE:
                small = await self.page.evaluate(_SMALL_TARGETS, TAP)
                assert small == [], f"{name}: controls under {TAP} px on a phone: {small}"
        await self.page.set_viewport_size({"width": WIDE, "height": 900})

    async def axe(self) -> list[dict[str, Any]]:
        if not await self.page.evaluate("() => typeof axe !== 'undefined'"):
            # Evaluated by the browser's debugging protocol: the page's CSP (script-src
            # 'none') binds the page's own scripts, not this.
            await self.page.evaluate(AXE.read_text(encoding="utf-8"))
        found: list[dict[str, Any]] = await self.page.evaluate(_AXE_RUN)
        return found

    async def screenshot(self, name: str) -> None:
        shot = self.folders[0] / name
        await self.page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000
        for folder in self.folders[1:]:
            shutil.copy(shot, folder / name)
        print(f"screenshot: {shot}")


@asynccontextmanager
async def console(
    base: str,
    folders: list[Path],
    *,
    check_login: bool = False,
    expected: re.Pattern[str] | None = None,
    sign_in: bool = True,
) -> AsyncIterator[Browser]:
    """Chromium signed in to the console at `base` (or not, for public pages); fails on
    foreign requests and errors.
    With `check_login`, the sign-in page is checked as every page is, on the way; console
    messages that match `expected` (something blocked on purpose) are no problem."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # executable_path: Debian's Chromium; Playwright never looks for, or fetches, its own.
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            context = await browser.new_context(viewport={"width": WIDE, "height": 900})
            page = await context.new_page()
            tab = Browser(page=page, base=base, folders=folders)

            async def only_ours(route: Route) -> None:
                if route.request.url.startswith(base + "/"):
                    await route.continue_()
                else:
                    tab.problems.append(f"asked another host: {route.request.url}")
                    await route.abort()

            await page.route("**/*", only_ours)
            page.on(
                "console",
                lambda message: (
                    tab.problems.append(f"console: {message.text}")
                    if message.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
            if sign_in:
                await page.goto(f"{base}/dashboard/login")
                if check_login:
                    await tab.check_page("login")
                await page.fill("#api_key", TEST_API_KEY)
                async with page.expect_navigation():
                    await page.click("button[type=submit]")
                assert page.url == f"{base}/dashboard"
            yield tab
            problems = [p for p in tab.problems if expected is None or not expected.search(p)]
            assert problems == [], problems
        finally:
            await browser.close()
