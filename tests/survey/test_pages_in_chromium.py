"""The survey pages a customer opens from mail, in headless Chromium on a phone and a
desktop: every answer a button of 44 px or more, no overflow, axe-core content."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.survey.tokens import SAMPLE_TOKENS
from tests.browser.harness import console, screenshot_dirs, served  # noqa: F401

pytestmark = pytest.mark.slow


async def test_the_answer_pages_fit_a_phone(
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    async with console(served, screenshot_dirs, sign_in=False) as browser:
        for token, kind in SAMPLE_TOKENS.items():
            await browser.open(f"/s/{token}")
            buttons = browser.page.locator("ol.scale a")
            assert await buttons.count() == {"nps": 11, "csat": 5, "ces": 7}[kind]
            await browser.check_page(f"survey-{kind}")
        # An answer (a sample's: nothing recorded) leads to the thank-you page and its form.
        async with browser.page.expect_navigation():
            await browser.page.locator("ol.scale a").first.click()
        assert await browser.page.locator("textarea#comment").count() == 1
        await browser.check_page("survey-thanks")
