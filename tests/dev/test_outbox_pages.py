"""`/dev/outbox` in development: caught mail as pages for a browser (the list; each email
with HTML, text and headers tabs), and as JSON and .eml for scripts, as before."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.mail.capture import MailCapture
from app.outbox.dispatcher import Dispatcher
from tests.browser.harness import console, screenshot_dirs, served  # noqa: F401
from tests.factories import order_created, post_event
from tests.outbox.conftest import dispatcher  # noqa: F401
from tests.smtp_sink import free_port

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[MailCapture]:
    port = free_port()
    mail = MailCapture(host="127.0.0.1", port=port, outbox_dir=tmp_path / "caught")
    mail.start()
    mail.port = port  # type: ignore[attr-defined]
    yield mail
    mail.stop()


@pytest.fixture
def settings(settings: Settings, capture: MailCapture, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": f"smtp://127.0.0.1:{capture.port}?starttls=off",  # type: ignore[attr-defined]
            "dev_outbox_dir": tmp_path / "caught",
        }
    )


@pytest.fixture
async def caught(client: AsyncClient, dispatcher: Dispatcher) -> AsyncIterator[str]:  # noqa: F811
    """One thank-you mail to Борис, through the dispatcher into the capture; its name."""
    body = order_created(email="boris@example.org", first_name="Борис", locale="ru")
    assert (await post_event(client, body)).status_code == 200
    await dispatcher.run_once()
    for _ in range(100):
        listed = (await client.get("/dev/outbox")).json()
        if listed:
            break
        await asyncio.sleep(0.02)
    [mail] = listed
    yield mail["name"]


async def test_pages_for_a_browser_json_and_eml_for_scripts(
    client: AsyncClient, caught: str
) -> None:
    # Scripts (no text/html in Accept) get what they always got.
    [listed] = (await client.get("/dev/outbox")).json()
    assert (
        listed["to"] == "Борис Ivanova <boris@example.org>"
        and listed["url"] == f"/dev/outbox/{caught}"
    )
    eml = await client.get(f"/dev/outbox/{caught}")
    assert eml.headers["content-type"] == "message/rfc822"
    assert b"Subject:" in eml.content

    page = await client.get("/dev/outbox", headers=BROWSER)
    assert page.headers["content-type"].startswith("text/html")
    assert f'<tr data-mail="{caught}">' in page.text
    assert listed["subject"] in page.text and "boris@example.org" in page.text

    shown = await client.get(f"/dev/outbox/{caught}", headers=BROWSER)
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    frame = f'title="The email as HTML" sandbox src="/dev/outbox/{caught}/body.html">'
    assert frame in shown.text
    assert "frame-src 'self'" in shown.headers["content-security-policy"]
    assert "script-src 'none'" in shown.headers["content-security-policy"]
    assert f"<h1>{listed['subject']}</h1>" in shown.text  # RFC 2047 decoded, Cyrillic

    framed = await client.get(f"/dev/outbox/{caught}/body.html")
    assert framed.status_code == 200 and "Борис" in framed.text
    policy = framed.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "script" not in policy
    assert "img-src https: data:" in policy  # not our own http pixel: opening counts no open
    assert framed.headers["x-frame-options"] == "SAMEORIGIN"

    text = await client.get(f"/dev/outbox/{caught}", params={"part": "text"}, headers=BROWSER)
    found = re.search(r'<pre class="mail" id="text" tabindex="0">(.*?)</pre>', text.text, re.S)
    assert found is not None and "Борис" in found.group(1)
    headers = await client.get(f"/dev/outbox/{caught}", params={"part": "headers"}, headers=BROWSER)
    assert re.search(r'<th class="key" scope="row">Message-ID</th>', headers.text)

    raw = await client.get(f"/dev/outbox/{caught}/raw")
    assert raw.headers["content-disposition"] == f'attachment; filename="{caught}"'
    assert raw.content == eml.content

    for path in ("/dev/outbox/nope.eml", "/dev/outbox/..%2F..%2Fetc%2Fpasswd"):
        assert (await client.get(path, headers=BROWSER)).status_code == 404
    bad_part = await client.get(f"/dev/outbox/{caught}", params={"part": "x"}, headers=BROWSER)
    assert bad_part.status_code == 422


@pytest.mark.slow
async def test_the_dev_outbox_in_chromium(
    caught: str,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    # The frame's policy blocks our own open pixel (http here), so looking counts no open.
    pixel = re.compile(r"Loading the image '[^']*/o/[^']+' violates [^\n]*img-src https: data:")
    async with console(served, screenshot_dirs, expected=pixel) as browser:
        await browser.open("/dev/outbox")
        await browser.check_page("dev-outbox")
        async with browser.page.expect_navigation():
            await browser.page.click("#mails a")
        frame = browser.page.frame_locator("iframe.mail")
        assert "Борис" in await frame.locator("body").inner_text()
        await browser.check_page("dev-mail")
        async with browser.page.expect_navigation():
            await browser.page.click("nav[aria-label=Parts] >> text=Headers")
        await browser.check_page("dev-mail-headers")
