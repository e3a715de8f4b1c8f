"""A message page's email for review mail: a review request shows sample star links (a
click on them records nothing), a review follow-up the review it follows up, escaped."""

from __future__ import annotations

import re

from httpx import AsyncClient
from sqlalchemy import select

from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.dashboard.conftest import sign_in
from tests.factories import order_created, order_event, post_event
from tests.reviews.test_review_flow import star_urls
from tests.reviews.test_review_follow_up import COMMENT, settings  # noqa: F401
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import FURNITURE, answer, comment


async def test_review_mail_as_the_console_shows_it(
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
    clock.advance(hours=1)
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    sent = {str(mail.message["Subject"]): mail for mail in smtp_sink.received}
    wardrobe_mail = sent["How do you like your Kids' wardrobe?"].part("text/html")
    wardrobe = star_urls(wardrobe_mail)
    clock.advance(minutes=20)
    assert (await answer(client, wardrobe[2])).status_code == 200
    assert (await comment(client, wardrobe[2], COMMENT)).status_code == 200
    async with runtime.session_factory() as session:
        rows = (await session.execute(select(Message.id, Message.rule_id))).all()
    ids = {rule: message_id for message_id, rule in rows}  # the last of each rule
    await sign_in(client)

    # The request: star links, but not the ones sent (those record an answer).
    request = await client.get(
        f"/dashboard/messages/{min(i for i, r in rows if r == 'review-request')}/email.html"
    )
    assert request.status_code == 200
    base = runtime.settings.public_url
    assert all(f'href="{base}/r/sample/{stars}"' in request.text for stars in range(1, 6))
    assert not star_urls(request.text) and not any(url in request.text for url in wardrobe.values())

    # The follow-up, not sent yet: the review it is about, the comment escaped.
    follow_up = await client.get(f"/dashboard/messages/{ids['review-follow-up']}/email.html")
    assert follow_up.status_code == 200
    assert "<strong>Kids' wardrobe</strong> 2 out of 5 stars (order #" in follow_up.text
    assert (
        'The door &lt;script&gt;alert("x")&lt;/script&gt; broke &amp; it wobbles' in follow_up.text
    )
    page = await client.get(f"/dashboard/messages/{ids['review-follow-up']}")
    text = re.search(r'<pre class="text" id="text-part">(.*?)</pre>', page.text, re.S)
    assert text is not None and "You gave Kids&#39; wardrobe 2 out of 5 stars" in text.group(1)
