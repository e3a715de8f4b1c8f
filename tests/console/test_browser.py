"""Every console page in headless Chromium: fits 1400 px and 390 px, screenshots, axe-core
finds no serious or critical violation, controls are big enough to tap (tests/browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.browser.harness import console, screenshot_dirs, served  # noqa: F401
from tests.conftest import Api, FrozenClock
from tests.console.test_queue import RULES, _orders
from tests.factories import order_created, post_event
from tests.intake.test_intake_failures import renamed_total, settings  # noqa: F401
from tests.intake.test_shopify import post_shopify
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

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


async def test_people_and_suppressions_in_chromium(
    client: AsyncClient,
    api: Api,
    dispatcher: Dispatcher,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    for number, (email, name) in enumerate(
        (("anna.lange@example.org", "Anna"), ("boris@example.org", "Борис"))
    ):
        body = order_created(
            order_id=f"82098291194615000{number}",
            customer_id=f"c-{number}",
            email=email,
            first_name=name,
        )
        assert (await post_event(client, body)).status_code == 200
    await dispatcher.run_once()
    for email, reason in (("old@example.org", "hard_bounce"), ("boris@example.org", "complaint")):
        response = await client.post(
            "/api/v1/suppressions", json={"email": email, "reason": reason}, headers=api.headers
        )
        assert response.status_code == 201
    async with console(served, screenshot_dirs) as browser:
        await browser.open("/dashboard/people")
        await browser.check_page("people")
        await browser.page.fill("input[name=q]", "boris")
        async with browser.page.expect_navigation():
            await browser.page.click("form[role=search] button")
        async with browser.page.expect_navigation():
            await browser.page.click("#people a")
        assert "/dashboard/people/" in browser.page.url
        assert await browser.page.locator("h1").inner_text() == "boris@example.org"
        await browser.check_page("person")

        await browser.open("/dashboard/suppressions")
        await browser.check_page("suppressions")
        # Count, then take off, with the page's own forms.
        await browser.page.select_option(".stack select[name=reason]", "hard_bounce")
        async with browser.page.expect_navigation():
            await browser.page.click(".stack button")
        assert "Would take off 1 address" in await browser.page.locator("#preview").inner_text()
        await browser.check_page("suppressions-preview")
        async with browser.page.expect_navigation():
            await browser.page.click("#preview button")
        assert await browser.page.locator("p.done").inner_text() == (
            "1 address taken off the list."
        )


async def test_catalog_intake_and_answers_in_chromium(
    client: AsyncClient,
    api: Api,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    items = [{"sku": "WIPES-12", "name": "Feuchttücher", "quantity": 2, "unit_price": "5.00"}]
    assert (await post_event(client, order_created(items=items))).status_code == 200
    product = {
        "id": "diapers-4",
        "title": "Öko-Windeln Größe 4",
        "categories": ["Baby & Toddler > Diapering > Diapers"],
        "url": "https://shop.example/products/diapers-4",
        "sku": "DIAPER-4-44",
        "price": "13.90",
    }
    response = await client.put(
        "/api/v1/products", json={"currency": "EUR", "products": [product]}, headers=api.headers
    )
    assert response.status_code == 200
    # A Shopify order of a shape our mapping does not expect: kept as an intake failure.
    failed = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-new")
    assert failed.json()["status"] == "unmapped", failed.text
    async with console(served, screenshot_dirs) as browser:
        await browser.open("/dashboard/catalog")
        assert await browser.page.locator("#unknown tbody tr").count() == 1
        await browser.check_page("catalog")
        await browser.open("/dashboard/intake")
        async with browser.page.expect_navigation():
            await browser.page.click("#failures a")
        await browser.check_page("intake-failure")
        await browser.open("/dashboard/intake")
        await browser.check_page("intake")
        await browser.open("/dashboard/answers")
        await browser.check_page("answers")


async def test_the_rules_pages_in_chromium(
    client: AsyncClient,
    runtime: Runtime,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    from tests.console.test_rules import RULES as RULES_PAGE_RULES

    # `later`'s second variant names a template folder that does not exist: its preview
    # shows the error, and the list its lint error.
    use_rules(runtime, tmp_path, RULES_PAGE_RULES)
    await _orders(client, "9101", "9102")
    async with console(served, screenshot_dirs) as browser:
        await browser.open("/dashboard/rules")
        assert await browser.page.locator("#rules tbody tr").count() == 2
        await browser.check_page("rules")
        async with browser.page.expect_navigation():
            await browser.page.click("#rules a >> text=thanks")
        assert browser.page.url == f"{served}/dashboard/rules/thanks"
        frames = browser.page.locator("article.preview iframe")
        assert await frames.count() == 2
        for number in range(2):
            await frames.nth(number).scroll_into_view_if_needed()
            body = browser.page.frame_locator("article.preview iframe").nth(number)
            assert "Anna" in await body.locator("body").inner_text()
        await browser.check_page("rule")
        await browser.page.fill("#send-test input[name=to]", "tester@example.org")
        async with browser.page.expect_navigation():
            await browser.page.click("#send-test button")
        assert await browser.page.locator("#notice").inner_text() == "The test message was sent."
        assert [mail.recipients for mail in smtp_sink.received] == [["tester@example.org"]]
        await browser.open("/dashboard/rules/later")
        await browser.check_page("rule-with-errors")
