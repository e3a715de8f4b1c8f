"""The shipped review follow-up (rules/review-follow-up.yaml) through the HTTP API and the
real SMTP sink: an order delivered, a review request per product sent, a 2-star answer with
a comment given on the review pages, and the apology an hour later showing the product, the
stars and the comment (escaped); a 5-star answer plans nothing. Previews show a sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import ROOT, Settings
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, order_event, post_event
from tests.reviews.test_review_flow import star_urls
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import FURNITURE, answer, comment

REQUEST = """
rules:
  - id: review-request
    kind: transactional
    when: {event: order.delivered}
    send: {after: 0m}
    template: product-review
    review: {per: item}
"""
# What a customer may type: markup that must reach the mail as text.
COMMENT = 'The door <script>alert("x")</script> broke & it wobbles'


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    rules = tmp_path / "follow-up-rules"
    rules.mkdir()
    (rules / "request.yaml").write_text(REQUEST)
    shipped = ROOT / "rules" / "review-follow-up.yaml"
    (rules / "review-follow-up.yaml").write_text(shipped.read_text())
    return settings.model_copy(update={"rules_dir": rules})


async def test_a_two_star_review_gets_the_apology_with_its_comment_and_five_stars_nothing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    body = order_created(items=FURNITURE)
    assert (await post_event(client, body)).status_code == 200
    delivered = order_event("order.delivered", body["order"]["id"])
    assert (await post_event(client, delivered)).status_code == 200
    clock.advance(hours=1)  # delivered at 11:00 (a Friday)
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    requests = {str(mail.message["Subject"]): mail for mail in smtp_sink.received}
    wardrobe = star_urls(requests["How do you like your Kids' wardrobe?"].part("text/html"))
    anchors = star_urls(requests["How do you like your Wall anchor kit?"].part("text/html"))

    clock.advance(minutes=20)
    assert (await answer(client, wardrobe[2])).status_code == 200
    assert (await comment(client, wardrobe[2], COMMENT)).status_code == 200
    assert (await answer(client, anchors[5])).status_code == 200

    # Not before the hour is up.
    clock.advance(minutes=59)
    assert (await dispatcher.run_once()).outcomes == {}
    clock.advance(minutes=2)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [apology] = smtp_sink.received[2:]
    assert apology.recipients == ["anna@example.org"]
    assert apology.message["Subject"] == "Sorry your Kids' wardrobe let you down"
    html, text = apology.part("text/html"), apology.part("text/plain")
    assert "We are sorry it let you down</h1>" in html
    assert "<strong>Kids' wardrobe</strong> 2 out of 5 stars (order #" in html
    # Escaped: the customer's markup prints as the text it is, and runs nowhere.
    assert 'The door &lt;script&gt;alert("x")&lt;/script&gt; broke &amp; it wobbles' in html
    assert "<script" not in html
    assert "You gave Kids' wardrobe 2 out of 5 stars" in text
    assert f"> {COMMENT}" in text
    # The 5-star review planned nothing: one follow-up, for the wardrobe's review.
    async with runtime.session_factory() as session:
        rules = list(
            (await session.execute(select(Message.rule_id).order_by(Message.id))).scalars()
        )
    assert rules == ["review-request", "review-request", "review-follow-up"]


async def test_the_preview_shows_a_sample_review_escaped(client: AsyncClient, api: Api) -> None:
    response = await client.post(
        "/api/v1/preview",
        params={"rule": "review-follow-up"},
        json=order_created(items=FURNITURE),
        headers=api.headers,
    )
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["subject"] == "Sorry your Kids' wardrobe let you down"
    assert "2 out of 5 stars" in shown["html"]
    assert "The &lt;b&gt;box&lt;/b&gt; came damaged &amp; one part was missing." in shown["html"]
    assert "<b>box" not in shown["html"]
    russian = await client.post(
        "/api/v1/preview",
        params={"rule": "review-follow-up", "locale": "ru"},
        json=order_created(items=FURNITURE),
        headers=api.headers,
    )
    assert russian.status_code == 200, russian.text
    assert "на 2 из 5" in russian.json()["html"]
