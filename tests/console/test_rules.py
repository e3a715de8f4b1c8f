"""`/dashboard/rules`: the loaded rules with file, lint, next sends and the stats API's
figures; a rule's page with its YAML, previews in every locale (sample or a customer's
order) and a test send to the SMTP sink, untracked and never in the outbox."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from app.config import Settings
from app.dashboard import figures
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock, Visitor
from tests.dashboard.conftest import csrf_token, seed, sign_in
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink
from tests.tracking.conftest import client, settings  # noqa: F401

PAGE = "/dashboard/rules"
RULES = """
rules:
  - id: thanks
    name: "Thanks <b>bold</b>"
    when: {event: order.created}
    send: {after: 0m}
    template: thank-you
  - id: later
    kind: marketing
    when: {event: order.created}
    send: {after: 3d}
    variants:
      - {template: thank-you, weight: 1}
      - {template: broken, weight: 1}
"""
# Renders in English; in Russian it names a variable no mail has: a lint error of `later`.
BROKEN = {
    "en": ("Hello {{ customer.first_name }}", "<p>Hi {{ customer.first_name }}</p>"),
    "ru": ("Привет {{ customer.nickname.upper() }}", "<p>Привет</p>"),
}


def _broken_template(configured: Settings) -> None:
    for locale, (subject, body) in BROKEN.items():
        folder = configured.templates_dir / "broken" / locale
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text(subject)
        (folder / "body.html").write_text(body)


def _row(page: str, rule: str) -> str:
    found = re.search(rf'<tr data-rule="{rule}">(.*?)</tr>', page, re.S)
    assert found is not None, rule
    return found.group(1)


def _cell(row: str, field: str) -> str:
    found = re.search(rf'<(td|span)[^>]* data-field="{field}">(.*?)</\1>', row, re.S)
    assert found is not None, field
    return found.group(2)


async def _order(http: AsyncClient, order_id: str, **customer: Any) -> None:
    body = order_created(order_id=order_id, customer_id=f"c-{order_id}", **customer)
    assert (await post_event(http, body)).status_code == 200


async def _messages(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(Message))).scalar_one())


async def test_the_list_shows_the_figures_of_the_stats_api(
    client: AsyncClient,  # noqa: F811
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    # The stats API's default span is the console's: the last 30 days to today.
    stats = await client.get("/api/v1/stats/rules", headers=api.headers)
    assert stats.status_code == 200
    summed: dict[str, Any] = {"sent": 0, "opened": 0, "clicked": 0, "converted": 0}
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for row in stats.json()["rows"]:
        assert row["rule"] == "links"
        for name in summed:
            summed[name] += row[name]
        for currency, amount in row["revenue"].items():
            revenue[currency] += Decimal(amount)
    assert summed == {"sent": 2, "opened": 1, "clicked": 1, "converted": 1}  # real figures

    await sign_in(client)
    response = await client.get(PAGE)
    assert response.status_code == 200
    row = _row(response.text, "links")
    for name, value in summed.items():
        assert _cell(row, name) == figures.count(value), name
    money = figures.money({currency: str(amount) for currency, amount in revenue.items()})
    assert _cell(row, "revenue") == "<br>".join(money) == "EUR 49.80"
    assert (_cell(row, "file"), _cell(row, "event"), _cell(row, "kind")) == (
        "links.yaml",
        "order.created",
        "marketing",
    )
    assert '<a href="/dashboard/rules/links">links</a>' in row
    assert 'aria-current="page">Rules' in response.text


async def test_lint_next_sends_and_load_errors(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    _broken_template(settings)
    folder = tmp_path / "console-rules"
    folder.mkdir()
    use_rules(runtime, folder, RULES)
    await _order(client, "7001")
    await _order(client, "7002", email="b@example.org")
    await sign_in(client)

    page = (await client.get(PAGE)).text
    thanks, later = _row(page, "thanks"), _row(page, "later")
    assert ">ok<" in _cell(thanks, "lint")
    lint = html.unescape(_cell(later, "lint"))
    assert "1 error" in lint and "template 'broken' (ru" in lint and "does not render" in lint
    # Ordered at 09:59 on Nov 20: `later` waits 3 days; `thanks` is due now.
    assert (_cell(later, "scheduled"), _cell(later, "next")) == ("2", "2026-11-23 09:59 UTC")
    assert (_cell(thanks, "scheduled"), _cell(thanks, "next")) == ("2", "2026-11-20 09:59 UTC")
    assert "did not load" not in page

    # A file that does not parse: the folder keeps its last good rules, and says so.
    (folder / "zz-broken.yaml").write_text("rules:\n  - id: [oops\n")
    assert not runtime.rules.reload()
    page = (await client.get(PAGE)).text
    assert "The rules folder did not load" in page and "still running" in page
    errors = re.search(r'id="load-errors-list">(.*?)</ul>', page, re.S)
    assert errors is not None and "zz-broken.yaml" in errors.group(1)
    other = re.search(r'id="other-errors">(.*?)</ul>', page, re.S)
    assert other is not None and "invalid YAML" in other.group(1)
    assert 'data-rule="thanks"' in page  # still listed: still running

    rule = await client.get(f"{PAGE}/later")
    assert rule.status_code == 200
    assert 'id="load-errors"' in rule.text and "1 error" in rule.text
    assert "template 'broken' (ru" in html.unescape(rule.text)


async def test_a_rule_page_previews_every_locale_in_frames(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    _broken_template(settings)
    use_rules(runtime, tmp_path, RULES)
    await sign_in(client)
    response = await client.get(f"{PAGE}/thanks")
    assert response.status_code == 200
    assert "frame-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    # The YAML as written, escaped; the rule's own lines only.
    source = re.search(r'<pre id="source"[^>]*>(.*?)</pre>', page, re.S)
    assert source is not None
    assert "&lt;b&gt;bold&lt;/b&gt;" in source.group(1) and "<b>" not in source.group(1)
    assert "id: thanks" in source.group(1) and "id: later" not in source.group(1)
    # thank-you in both shipped locales, the sample order's customer (Anna).
    articles = re.findall(
        r'<article class="preview" data-template="([^"]+)" data-locale="([^"]*)"', page
    )
    assert articles == [("thank-you", "en"), ("thank-you", "ru")]
    subjects = re.findall(r'<span class="subject-text">([^<]*)</span>', page)
    assert subjects[0].startswith("Thank you for your order #") and "Спасибо" in subjects[1]
    frames = [html.unescape(src) for src in re.findall(r'<iframe sandbox src="([^"]+)"', page)]
    assert len(frames) == 2
    for frame in frames:
        framed = await client.get(frame)
        assert framed.status_code == 200, frame
        assert framed.headers["content-security-policy"].startswith(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
            "frame-ancestors 'self'"
        )
        assert framed.headers["x-frame-options"] == "SAMEORIGIN"
        assert "Anna" in framed.text and "/o/" not in framed.text

    # A template that does not render shows its error, in the page and in the frame.
    later = await client.get(f"{PAGE}/later")
    assert later.status_code == 200
    broken = re.search(
        r'data-template="broken" data-locale="ru".*?<p class="error" role="alert">(.*?)</p>',
        later.text,
        re.S,
    )
    assert broken is not None and "nickname" in html.unescape(broken.group(1))
    framed = await client.get(
        f"{PAGE}/later/preview.html", params={"template": "broken", "locale": "ru"}
    )
    assert framed.status_code == 422 and "nickname" in html.unescape(framed.text)
    assert framed.headers["x-frame-options"] == "SAMEORIGIN"
    assert (
        await client.get(
            f"{PAGE}/thanks/preview.html", params={"template": "other", "locale": "en"}
        )
    ).status_code == 404

    missing = await client.get(f"{PAGE}/no-such-rule")
    assert missing.status_code == 404 and "No loaded rule" in missing.text
    client.cookies.clear()
    assert (await client.get(f"{PAGE}/thanks")).status_code == 303
    assert (await client.get(frames[0])).status_code == 303


async def test_a_preview_with_a_chosen_customers_latest_order(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES.split("  - id: later")[0])
    await _order(client, "7101", email="zlata@example.org", first_name="Zlata")
    await sign_in(client)
    for chosen in ("Zlata@Example.org", "7101"):
        page = (await client.get(f"{PAGE}/thanks", params={"customer": chosen})).text
        assert "customer-error" not in page, chosen
        assert "With the latest order of" in page
        subject = re.search(r'<span class="subject-text">([^<]*)</span>', page)
        assert subject is not None and "#7101" in subject.group(1)
        frame = re.search(r'<iframe sandbox src="([^"]+)"', page)
        assert frame is not None
        framed = await client.get(html.unescape(frame.group(1)))
        assert framed.status_code == 200 and "Zlata" in framed.text and "Anna" not in framed.text
    page = (await client.get(f"{PAGE}/thanks", params={"customer": "nobody@example.org"})).text
    assert 'id="customer-error"' in page and "No stored order" in page


async def test_a_test_send_arrives_marked_and_untracked(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    settings: Settings,  # noqa: F811
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES.split("  - id: later")[0])
    await _order(client, "7201", email="olga@example.org", first_name="Olga")
    await sign_in(client)
    before = await _messages(runtime)
    token = await csrf_token(client, f"{PAGE}/thanks")
    form = {
        "csrf": token,
        "to": "tester@example.org",
        "template": "thank-you",
        "locale": "ru",
        "customer": "olga@example.org",
    }
    response = await client.post(f"{PAGE}/thanks/send-test", data=form)
    assert (response.status_code, response.headers["location"]) == (303, f"{PAGE}/thanks?sent=1")
    [mail] = smtp_sink.received
    assert mail.recipients == ["tester@example.org"]
    message = mail.message
    assert message["Subject"].startswith("[TEST] ") and "7201" in message["Subject"]
    body = mail.part("text/html")
    assert "Olga" in body
    public = settings.public_url.rstrip("/")
    assert f"{public}/o/" not in body and f"{public}/c/" not in body  # no pixel, no redirects
    assert await _messages(runtime) == before  # never in the outbox
    page = (await client.get(response.headers["location"])).text
    assert 'id="notice"' in page and "The test message was sent." in page


async def test_test_sends_refused(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES.split("  - id: later")[0])
    await sign_in(client)
    token = await csrf_token(client, f"{PAGE}/thanks")
    form = {"csrf": token, "to": "tester@example.org", "template": "thank-you", "locale": "en"}
    url = f"{PAGE}/thanks/send-test"
    assert (await client.post(url, data=form | {"csrf": "forged"})).status_code == 403
    assert (
        await client.post(url, data={k: v for k, v in form.items() if k != "csrf"})
    ).status_code == 403
    for bad, message in (
        ({"to": "tester@example.org\r\nBcc: all@example.org"}, "not an email address"),
        ({"to": "not-an-address"}, "not an email address"),
        ({"template": "welcome"}, "one of this rule"),
        ({"locale": "de"}, "one of the template"),
    ):
        refused = await client.post(url, data=form | bad)
        assert refused.status_code == 422 and message in refused.text, bad
    assert (await client.post(f"{PAGE}/gone/send-test", data=form)).status_code == 404
    assert smtp_sink.received == []
    # A few a minute from one client, then 429 with nothing sent.
    for _ in range(3):
        sent = await client.post(url, data=form)
        assert sent.headers["location"].endswith("?sent=1")
    again = await client.post(url, data=form)
    assert again.status_code == 429 and "Too many test sends" in again.text
    assert len(smtp_sink.received) == 3


async def test_a_refused_test_send_says_so(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES.split("  - id: later")[0])
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 <x@y> no such user"
    await sign_in(client)
    token = await csrf_token(client, f"{PAGE}/thanks")
    form = {"csrf": token, "to": "tester@example.org", "template": "thank-you", "locale": "en"}
    response = await client.post(f"{PAGE}/thanks/send-test", data=form)
    assert response.headers["location"] == f"{PAGE}/thanks?error=smtp"
    page = (await client.get(response.headers["location"])).text
    assert "did not take the message" in page and "no such user" not in page
    # An unknown code shows nothing: no text of the request is put in the page.
    page = (await client.get(f"{PAGE}/thanks", params={"error": "<script>"})).text
    assert 'id="error"' not in page
