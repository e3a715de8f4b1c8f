"""Every shipped template as sent, opened in a real browser: readable, whole, on phones too.

The HTML part of each message (see `sent_samples`: CSS inlined, honeypot and open pixel
in) is written to a file and opened in Debian's Chromium through Playwright, one browser
for all pages. Playwright's own browsers are never used or downloaded: the launch names
the system binary. Nothing leaves the machine: the open pixel is answered with a GIF as
our server would, product images with a picture as the shop's server would, and any other
request fails the test.

Screenshots go to a temporary folder (printed), and also to AFTERSALE_SCREENSHOT_DIR
when it is set.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.harness import BROWSER_ARGS
from tests.mail.sent_samples import (
    PRODUCT_IMAGES,
    SETTINGS,
    Sample,
    compose_sent,
    require_program,
    shipped_samples,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request, Route

# Phones, and the width the layout is designed for.
WIDTHS = (375, 600)
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# A product's picture: one sage-green pixel, drawn at the size the mail asks, so the
# screenshots show where pictures go.
PRODUCT_PICTURE = base64.b64decode("R0lGODlhAQABAIAAAKHEmwAAACwAAAAAAQABAAACAkQBADs=")
_CYRILLIC_WORD = re.compile(r"[А-Яа-яЁё]{3,}")

# Elements reaching past the right or left edge of the viewport, for the overflow check.
_OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      const name = element.tagName.toLowerCase()
        + (element.className ? "." + element.className : "");
      out.push(`${name} [${Math.round(box.left)}, ${Math.round(box.right)}]: `
        + (element.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 40));
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, out};
}"""
# Images and their alt text; an image bigger than 1x1 is content and needs words.
_IMAGES = """() => Array.from(document.images).map(image => ({
  src: image.src.slice(0, 60),
  alt: image.getAttribute("alt"),
  width: image.width,
  height: image.height,
}))"""
# Cyrillic drawn in the font the mail asks for: a missing glyph draws as the same box
# whatever the letter, so letters of different widths prove real glyphs.
_CYRILLIC_WIDTHS = """() => {
  const style = getComputedStyle(document.querySelector("h1"));
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  return ["ш", "г", "Ж", "і", "\\u{10FFFD}"].map(letter => context.measureText(letter).width);
}"""


@dataclass
class PageLog:
    """What a page did besides drawing: console errors, and requests it tried."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    pixels: int = 0

    def clear(self) -> None:
        self.errors.clear()
        self.blocked.clear()
        self.pixels = 0


SAMPLES = shipped_samples()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_program("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed, and CI requires it (pip install '.[dev]')")
        pytest.skip("playwright is not installed (pip install -c constraints.txt -e '.[dev]')")
    with sync_playwright() as playwright:
        # executable_path: Debian's Chromium; Playwright never looks for, or fetches, its own.
        launched = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def watched_page(browser: Browser) -> Iterator[tuple[Page, PageLog]]:
    """One tab for every template: a new one each time would double the time taken."""
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800})
    page = context.new_page()
    log = _watch(page)
    yield page, log
    context.close()


@pytest.fixture(scope="module")
def screenshot_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    extra = os.environ.get("AFTERSALE_SCREENSHOT_DIR")
    if extra:
        folders.append(Path(extra))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: sample.name)
def test_template_looks_right_in_chromium(
    sample: Sample,
    watched_page: tuple[Page, PageLog],
    screenshot_dirs: list[Path],
    tmp_path: Path,
) -> None:
    page, log = watched_page
    sent = compose_sent(sample, now=datetime.now(UTC))
    page_file = tmp_path / f"{sample.name}.html"
    page_file.write_text(sent.html, encoding="utf-8")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        log.clear()
        page.goto(page_file.as_uri(), wait_until="load")
        _check_page(page, log, sample, subject=sent.subject, width=width)
        shot = screenshot_dirs[0] / f"{sample.name}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        for folder in screenshot_dirs[1:]:
            shutil.copy(shot, folder / shot.name)
        print(f"{sample.name} at {width}px: {shot}")


def _watch(page: Page) -> PageLog:
    log = PageLog()
    tracking = f"{SETTINGS.public_url.rstrip('/')}/o/"

    def on_console(message: Any) -> None:
        if message.type == "error":
            log.errors.append(message.text)

    def on_request(route: Route, request: Request) -> None:
        if request.url.startswith("file://"):
            route.continue_()
        elif request.url.startswith(tracking):
            log.pixels += 1
            route.fulfill(status=200, content_type="image/gif", body=PIXEL_GIF)
        elif request.url.startswith(PRODUCT_IMAGES):
            route.fulfill(status=200, content_type="image/gif", body=PRODUCT_PICTURE)
        else:
            log.blocked.append(request.url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.errors.append(f"page error: {error}"))
    page.route("**/*", on_request)
    return log


def _check_page(page: Page, log: PageLog, sample: Sample, *, subject: str, width: int) -> None:
    where = f"{sample.name} at {width}px"
    assert not log.errors, f"{where}: console errors: {log.errors}"
    assert not log.blocked, f"{where}: the mail loads something from outside: {log.blocked}"
    assert log.pixels == 1, f"{where}: the open pixel was fetched {log.pixels} times"

    body = page.locator("body")
    assert body.is_visible(), f"{where}: the body is not visible"
    text = body.inner_text()  # what is rendered visible, not hidden preheader or links
    expected = [sample.customer.first_name, *sample.product_names]
    missing = [words for words in expected if words not in text]
    assert not missing, f"{where}: not shown: {missing}\n--- shown:\n{text}"

    if sample.locale == "ru":
        _check_russian(page, text, subject=subject, where=where)

    layout = page.evaluate(_OVERFLOWING)
    assert layout["scrollWidth"] <= layout["width"] and not layout["out"], (
        f"{where}: wider than the screen (scroll width {layout['scrollWidth']}): "
        + "; ".join(layout["out"][:10])
    )

    for image in page.evaluate(_IMAGES):
        assert image["alt"] is not None, f"{where}: an image has no alt attribute: {image}"
        if image["width"] > 1 or image["height"] > 1:
            assert image["alt"].strip(), f"{where}: a content image has empty alt text: {image}"


def _check_russian(page: Page, text: str, *, subject: str, where: str) -> None:
    """The page reads in Russian, echoes its subject, and draws Cyrillic with real glyphs."""
    cyrillic = len(re.findall(r"[А-Яа-яЁё]", text))
    latin = len(re.findall(r"[A-Za-z]", text))
    assert cyrillic >= 4 * latin, f"{where}: mostly not Russian ({cyrillic} vs {latin} Latin)"
    # Russian inflects ("мебелью", "мебель"): words are compared by their first five letters.
    subject_stems = {word.lower()[:5] for word in _CYRILLIC_WORD.findall(subject)}
    shown_stems = {word.lower()[:5] for word in _CYRILLIC_WORD.findall(text)}
    assert subject_stems & shown_stems, (
        f"{where}: no word of the subject {subject!r} is shown ({sorted(subject_stems)})"
    )
    *letters, missing_glyph = page.evaluate(_CYRILLIC_WIDTHS)
    assert len(set(letters)) > 1 and missing_glyph not in letters, (
        f"{where}: Cyrillic draws as missing glyphs (widths {letters}, box {missing_glyph})"
    )
