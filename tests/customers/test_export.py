"""Access requests (issue 16, item 3): one JSON document with everything held about a person,
by the shop's customer id or by address."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from urllib.parse import urlsplit

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.coupons.conftest import add_pool
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import BROWSER, FURNITURE

CODE = "KIDS-7Q2X-ЁЖ"
COUPON_RULES = """
rules:
  - id: links
    kind: marketing
    when: {event: order.created}
    send: {after: 0m}
    template: links
    coupon: {pool: KIDS, when_empty: send}
"""
_PIXEL = re.compile(r'<img src="(https?://[^"]+/o/[^"]+)"')
# A link with text a reader can see (the hidden honeypot link has none).
_LINK = re.compile(r'<a href="(https?://[^"]+/c/[^"]+)"[^>]*>\s*[^<\s]')


async def test_export_by_address_holds_everything(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "coupon-rules"
    folder.mkdir()
    use_rules(runtime, folder, COUPON_RULES)
    await add_pool(runtime, [CODE], pool="KIDS")
    await post_event(client, order_created(customer_id="c-77", items=FURNITURE))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    html = smtp_sink.received[-1].part("text/html")
    clock.advance(minutes=20)
    # The customer opens the mail and follows a link.
    headers = {"User-Agent": BROWSER}
    pixel = _PIXEL.search(html)
    link = _LINK.search(html)
    assert pixel and link
    assert (await client.get(urlsplit(pixel[1]).path, headers=headers)).status_code == 200
    click = await client.get(urlsplit(html_lib.unescape(link[1])).path, headers=headers)
    assert click.status_code in (302, 303, 307)
    # The operator suppresses the address by hand.
    added = await client.post(
        "/api/v1/suppressions",
        json={"email": "anna@example.org", "reason": "manual"},
        headers=api.headers,
    )
    assert added.is_success, added.text

    url = "/api/v1/customers/export"
    assert (await client.get(url, params={"email": "anna@example.org"})).status_code == 401
    response = await client.get(url, params={"email": " Anna@Example.ORG "}, headers=api.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["shop"] is None
    [person] = data["customers"]
    assert (person["customer"]["id"], person["customer"]["email"]) == ("c-77", "anna@example.org")
    [order] = person["orders"]
    assert [item["sku"] for item in order["items"]] == ["KF-WARDROBE", "KF-ANCHOR"]
    [message] = person["messages"]
    assert (message["rule"], message["status"]) == ("links", "sent")
    events = {(event["kind"], event["class"]) for event in person["tracking"]}
    assert ("open", "human") in events and ("click", "human") in events
    [followed] = [event for event in person["tracking"] if event["kind"] == "click"]
    assert followed["url"] == click.headers["location"] and followed["at"]
    assert person["survey_answers"] == []  # tests/survey/test_survey_privacy.py: answers
    [coupon] = person["coupons"]
    assert (coupon["code"], coupon["message_id"]) == (CODE, message["id"])
    assert [row["reason"] for row in data["suppressions"]] == ["manual"]
    assert [row["reason"] for row in person["suppressions"]] == ["manual"]

    # The export by the shop's id carries the same parts.
    by_id = await client.get("/api/v1/customers/c-77/export", headers=api.headers)
    assert by_id.json()["tracking"] == person["tracking"]
    assert by_id.json()["coupons"] == person["coupons"]

    # One shop only; nobody there, or nowhere; and an address that is not one.
    one_shop = await client.get(
        url, params={"email": "anna@example.org", "shop": "default"}, headers=api.headers
    )
    assert len(one_shop.json()["customers"]) == 1
    other = await client.get(
        url, params={"email": "anna@example.org", "shop": "tea-house"}, headers=api.headers
    )
    # The suppression is kept by address, whatever the shop: it is still held about them.
    assert other.status_code == 200 and other.json()["customers"] == []
    nobody = await client.get(url, params={"email": "boris@example.org"}, headers=api.headers)
    assert nobody.status_code == 404
    bad = await client.get(url, params={"email": "anna(at)example.org"}, headers=api.headers)
    assert bad.status_code == 422
    [error] = bad.json()["detail"]
    assert error["loc"] == ["query", "email"] and "anna" not in bad.text
