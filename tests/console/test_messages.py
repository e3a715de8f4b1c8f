"""`/dashboard/messages`: the search, a message's timeline and rendered email, cancel and
send now; behind the sign-in, forms with the CSRF token."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select, update

from app.console import messages as messages_page
from app.feedback.model import Feedback
from app.feedback.service import apply_feedback
from app.models import FeedbackKind, Message, MessageStatus, TrackedLink, TrackingEvent
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock, Visitor
from tests.dashboard.conftest import csrf_token, sign_in
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import fold
from tests.stats.test_stats_flow import APPLE_PROXY, place_order, send_order
from tests.tracking.conftest import client, settings  # noqa: F401
from tests.tracking.test_tracking_flow import fetch

RULES = """
rules:
  - id: links
    kind: marketing
    when: {event: order.created}
    send: {after: 0m}
    template: links
  - id: later
    when: {event: order.created}
    send: {after: 3d}
    template: thank-you
"""
_ROW = re.compile(r'<tr data-message="(\d+)">')


def found(page: Response) -> list[int]:
    """The message ids a search page lists, in its order."""
    return [int(number) for number in _ROW.findall(page.text)]


async def ids_of(runtime: Runtime, **where: object) -> list[int]:
    async with runtime.session_factory() as session:
        statement = select(Message.id).filter_by(**where).order_by(Message.id)
        return list((await session.execute(statement)).scalars())


async def status_of(runtime: Runtime, message_id: int) -> str:
    async with runtime.session_factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.status


@pytest.fixture
async def two_orders(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    """Anna's order 7001 and Boris's 7002: each a `links` mail sent now (Nov 20) and a
    `later` one due Nov 23."""
    use_rules(runtime, tmp_path, RULES)
    assert await send_order(client, dispatcher, smtp_sink, order_id="7001") is not None
    boris = {"customer_id": "c-2", "email": "boris@example.org"}
    assert await send_order(client, dispatcher, smtp_sink, order_id="7002", **boris) is not None
    await sign_in(client)


@pytest.mark.usefixtures("two_orders")
async def test_the_search_by_each_filter(client: AsyncClient, runtime: Runtime) -> None:  # noqa: F811
    links, later = await ids_of(runtime, rule_id="links"), await ids_of(runtime, rule_id="later")
    assert len(links) == len(later) == 2
    anna = sorted([links[0], later[0]], reverse=True)
    everything = await client.get("/dashboard/messages")
    assert everything.status_code == 200
    assert found(everything) == sorted(links + later, reverse=True)  # newest first
    # Each row leads to its message's page.
    assert f'href="/dashboard/messages/{links[0]}"' in everything.text

    async def search(**params: str) -> list[int]:
        page = await client.get("/dashboard/messages", params=params)
        assert page.status_code == 200, page.text
        return found(page)

    assert await search(email="anna@example.org") == anna
    assert await search(email="ANNA@example.org ") == anna  # as the API: any case, trimmed
    assert await search(order="7002") == sorted([links[1], later[1]], reverse=True)
    assert await search(rule="later") == later[::-1]
    assert await search(status="sent") == links[::-1]
    assert await search(rule="later", status="scheduled") == later[::-1]
    assert await search(rule="links", status="scheduled") == []
    # Days count the sending day of the sent, the due day of the others (Nov 23).
    assert await search(**{"from": "2026-11-21"}) == later[::-1]
    assert await search(to="2026-11-20") == links[::-1]
    assert await search(**{"from": "2026-11-23", "to": "2026-11-23"}) == later[::-1]
    assert await search(**{"from": "2026-11-24"}) == []
    # The form shows what was searched.
    page = await client.get("/dashboard/messages", params={"rule": "later", "status": "sent"})
    assert '<option value="later" selected>' in page.text
    assert '<option value="sent" selected>' in page.text
    assert "No message matches." in page.text


@pytest.mark.usefixtures("two_orders")
async def test_bad_filters_say_what_is_wrong(client: AsyncClient) -> None:  # noqa: F811
    for params, error in (
        ({"from": "2026-13-01"}, "from: &#39;2026-13-01&#39; is not a date (yyyy-mm-dd)"),
        ({"to": "yesterday"}, "to: &#39;yesterday&#39; is not a date"),
        ({"status": "lost"}, "status: &#39;lost&#39; is not one of scheduled, sending, sent"),
        ({"from": "2026-11-22", "to": "2026-11-21"}, "the first day comes after the last"),
        ({"cursor": "-3"}, "cursor: &#39;-3&#39; is not a message id"),
    ):
        page = await client.get("/dashboard/messages", params=params)
        assert page.status_code == 422, params
        assert error in page.text, (params, page.text)
        assert 'id="errors"' in page.text and found(page) == []


async def test_the_pages_need_a_sign_in(client: AsyncClient) -> None:  # noqa: F811
    for path in (
        "/dashboard/messages",
        "/dashboard/messages/1",
        "/dashboard/messages/1/email.html",
    ):
        response = await client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/dashboard/login")


@pytest.mark.usefixtures("two_orders")
async def test_pages_of_results(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messages_page, "PAGE_SIZE", 3)
    newest = sorted(await ids_of(runtime), reverse=True)
    first = await client.get("/dashboard/messages", params={"email": "", "status": ""})
    assert found(first) == newest[:3]
    older = re.search(r'<a href="(/dashboard/messages\?[^"]+)" rel="next">Older</a>', first.text)
    assert older is not None
    assert older.group(1) == f"/dashboard/messages?cursor={newest[2]}"
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert found(second) == newest[3:]
    assert 'rel="next"' not in second.text  # the last page
    assert '<a href="/dashboard/messages">Newest</a>' in second.text
    # Filters stay with the pages.
    filtered = await client.get("/dashboard/messages", params={"email": "anna@example.org"})
    assert found(filtered) and 'rel="next"' not in filtered.text  # one page
    monkeypatch.setattr(messages_page, "PAGE_SIZE", 1)
    filtered = await client.get("/dashboard/messages", params={"email": "anna@example.org"})
    assert f"email=anna%40example.org&amp;cursor={found(filtered)[0]}" in filtered.text


async def test_a_message_s_timeline_from_sending_to_conversion(
    client: AsyncClient,  # noqa: F811
    visitor: Visitor,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="8001")
    assert sent is not None
    [message_id] = await ids_of(runtime)
    clock.advance(minutes=1)
    # Apple's proxy fetches the pixel on delivery (a machine); Anna clicks later (a human).
    assert (await fetch(visitor(APPLE_PROXY), sent.pixel, agent="Mozilla/5.0")).status_code == 200
    clock.advance(minutes=30)
    assert (await fetch(client, sent.links[1])).status_code == 302
    clock.advance(minutes=5)
    # A soft bounce reported later, naming the Message-ID sent (as every source does).
    report = Feedback(
        provider="postmark",
        event_id="pm-1",
        kind=FeedbackKind.SOFT_BOUNCE,
        recipient=None,
        detail="452 4.2.2 Mailbox full",
        smtp_message_id=str(smtp_sink.received[-1].message["Message-ID"]),
    )
    async with runtime.session_factory() as session, session.begin():
        applied = await apply_feedback(
            session, reports=[report], secret=runtime.settings.secret_key, now=clock.now()
        )
    assert (applied.recorded, applied.unmatched) == (1, 0)
    await place_order(client, order_id="8002", at="2026-11-22T10:00:00Z")
    await fold(runtime)  # attribution: the click converts the next order
    await sign_in(client)

    page = await client.get(f"/dashboard/messages/{message_id}")
    assert page.status_code == 200
    timeline = re.findall(
        r'<li data-kind="(\w+)"(?: data-class="(\w+)")?>\s*<time datetime="([^"]+)">',
        page.text,
    )
    assert [(kind, class_) for kind, class_, _ in timeline] == [
        ("planned", ""),
        ("attempt", ""),
        ("sent", ""),
        ("open", "machine"),
        ("click", "human"),
        ("feedback", ""),
        ("conversion", ""),
    ]
    times = [at for _, _, at in timeline][1:]  # planned: first, by the host's clock
    assert times == sorted(times) and times[-1].startswith("2026-11-22T10:00:00")
    assert "SMTP 250" in page.text  # the accepted attempt's reply
    assert "Soft bounce" in page.text and "452 4.2.2 Mailbox full" in page.text
    assert "https://shop.example/care" in page.text  # the clicked link
    assert "order 8002 " in page.text and ">click</span>" in page.text
    assert sent.raw.decode().count(_fact(page, "smtp_message_id")) == 1
    assert _fact(page, "status") == "sent"
    assert re.fullmatch(r"links \(version \w+\), step 1", _fact(page, "rule"))
    # The recipient leads to the customer's page.
    person = re.search(r'href="(/dashboard/people/\d+)">anna@example.org</a>', page.text)
    assert person is not None
    assert (await client.get(person.group(1))).status_code == 200
    # Sent: nothing to cancel or send.
    assert "/cancel" not in page.text and "/send-now" not in page.text


def _fact(page: Response, field: str) -> str:
    value = re.search(rf'<dd data-field="{field}">(.*?)</dd>', page.text, re.S)
    assert value is not None, field
    return html.unescape(re.sub(r"<[^>]+>", "", value.group(1))).strip()


async def test_the_rendered_email_is_framed_untracked(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    api: Api,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="8101")
    assert sent is not None
    [message_id] = await ids_of(runtime)
    await sign_in(client)
    page = await client.get(f"/dashboard/messages/{message_id}")
    frame = f'<iframe class="email" sandbox src="/dashboard/messages/{message_id}/email.html"'
    assert frame in page.text
    # Only the message page may frame, and only this origin.
    assert page.headers["content-security-policy"].endswith("; frame-src 'self'")
    assert (
        "frame-src"
        not in (await client.get("/dashboard/messages")).headers["content-security-policy"]
    )
    assert "Your order 8101" in page.text  # the subject
    text = re.search(r'<pre class="text" id="text-part">(.*?)</pre>', page.text, re.S)
    assert text is not None and "Care guide: https://shop.example/care" in text.group(1)

    async def counts() -> tuple[int, int]:
        async with runtime.session_factory() as session:
            links = await session.scalar(select(func.count()).select_from(TrackedLink))
            events = await session.scalar(select(func.count()).select_from(TrackingEvent))
            return links or 0, events or 0

    before = await counts()
    email = await client.get(f"/dashboard/messages/{message_id}/email.html")
    assert email.status_code == 200
    policy = email.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert "form-action 'none'" in policy and policy.endswith("; sandbox")
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    assert email.headers["cache-control"] == "no-store"
    # The template's own links, as in the mail sent but untracked: no redirect, no pixel.
    assert 'href="https://shop.example/care"' in email.text
    assert "/c/" not in email.text and "/o/" not in email.text
    assert sent.links[1] not in email.text
    assert await counts() == before  # rendering stored no link and counted nothing

    # Erased: the page says the email cannot be shown; the frame page says it too.
    erased = await client.delete("/api/v1/customers/c-1001", headers=api.headers)
    assert erased.status_code == 200, erased.text
    page = await client.get(f"/dashboard/messages/{message_id}")
    assert page.status_code == 200 and "<iframe" not in page.text
    assert "cannot be shown: its customer was erased" in page.text
    assert _fact(page, "recipient") == "erased"
    email = await client.get(f"/dashboard/messages/{message_id}/email.html")
    assert email.status_code == 409 and "its customer was erased" in email.text


async def test_a_refused_attempt_with_its_smtp_reply_then_sent_now(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    smtp_sink.rcpt_reply = lambda _address: "451 4.3.0 Mailbox busy, try later"
    assert await send_order(client, dispatcher, smtp_sink, order_id="8201") is None
    [message_id] = await ids_of(runtime)
    await sign_in(client)
    page = await client.get(f"/dashboard/messages/{message_id}")
    assert _fact(page, "status") == "scheduled"  # waiting for its retry
    attempt = re.search(r'<li data-kind="attempt">.*?</li>', page.text, re.S)
    assert attempt is not None
    assert "SMTP 451" in attempt.group(0) and "Mailbox busy" in attempt.group(0)

    # The retry waits a minute or more; "Send now" makes it due at once.
    smtp_sink.rcpt_reply = lambda _address: None
    token = await csrf_token(client, f"/dashboard/messages/{message_id}")
    response = await client.post(f"/dashboard/messages/{message_id}/send-now", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/messages/{message_id}?done=sent-now"
    shown = await client.get(response.headers["location"])
    assert "Due now: the worker&#39;s next run takes it." in shown.text
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    page = await client.get(f"/dashboard/messages/{message_id}")
    kinds = re.findall(r'<li data-kind="(\w+)"', page.text)
    assert kinds == ["planned", "attempt", "attempt", "sent"]


async def test_cancel_and_send_now_need_the_token(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await place_order(client, order_id="8301", at="2026-11-20T09:59:00Z")
    await place_order(
        client, order_id="8302", at="2026-11-20T09:59:00Z", customer_id="c-2", email="b@x.org"
    )
    await place_order(
        client, order_id="8303", at="2026-11-20T09:59:00Z", customer_id="c-3", email="c@x.org"
    )
    first, second, third = await ids_of(runtime, rule_id="later")
    await sign_in(client)
    # The queue's rules lead here, to their scheduled mail.
    queue = await client.get("/dashboard/queue")
    assert 'href="/dashboard/messages?rule=later&amp;status=scheduled"' in queue.text
    page = await client.get(f"/dashboard/messages/{first}")
    assert "Send now" in page.text and "Cancel message" in page.text
    token = await csrf_token(client, f"/dashboard/messages/{first}")

    # No token, a wrong one, another session's: 403, and nothing changed.
    for data in ({}, {"csrf": "forged"}, {"csrf": token[:-2] + "xx"}):
        for action in ("cancel", "send-now"):
            refused = await client.post(f"/dashboard/messages/{first}/{action}", data=data)
            assert refused.status_code == 403, (action, data)
            assert "Nothing was changed" in refused.text
    assert await status_of(runtime, first) == MessageStatus.SCHEDULED
    assert (await dispatcher.run_once()).outcomes == {"sent": 3}  # the `links` mail only

    response = await client.post(f"/dashboard/messages/{first}/cancel", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/messages/{first}?done=cancelled"
    shown = await client.get(response.headers["location"])
    assert "Cancelled: the message will not be sent." in shown.text
    assert _fact(shown, "status") == "cancelled (cancelled_by_operator)"
    assert '<li data-kind="status">' in shown.text
    assert "/send-now" not in shown.text and "/cancel" not in shown.text
    # Send now is for scheduled mail only: refused, with the reason.
    refused = await client.post(f"/dashboard/messages/{first}/send-now", data={"csrf": token})
    assert refused.status_code == 409
    assert "Not sent now: message is cancelled; send now applies to scheduled." in refused.text

    # The other `later` message goes now instead of in 3 days.
    response = await client.post(f"/dashboard/messages/{second}/send-now", data={"csrf": token})
    assert response.status_code == 303
    received = len(smtp_sink.received)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert smtp_sink.received[received].recipients == ["b@x.org"]
    assert await status_of(runtime, first) == MessageStatus.CANCELLED

    # A message a worker holds a live lease on: not cancelled, and the page says why.
    await _sending(runtime, clock, third)
    refused = await client.post(f"/dashboard/messages/{third}/cancel", data={"csrf": token})
    assert refused.status_code == 409
    assert "Not cancelled: message is being sent" in refused.text
    assert await status_of(runtime, third) == MessageStatus.SENDING

    missing = await client.post("/dashboard/messages/999999/cancel", data={"csrf": token})
    assert missing.status_code == 404


async def _sending(runtime: Runtime, clock: FrozenClock, message_id: int) -> None:
    """The message made `sending` under a worker's lease that runs another minute."""
    async with runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                status=MessageStatus.SENDING,
                claimed_by="worker-z",
                next_attempt_at=clock.now() + timedelta(minutes=1),
            )
        )


async def test_an_unknown_message_is_404(client: AsyncClient) -> None:  # noqa: F811
    await sign_in(client)
    page = await client.get("/dashboard/messages/424242")
    assert page.status_code == 404 and "There is no message #424242." in page.text
    assert (await client.get("/dashboard/messages/424242/email.html")).status_code == 404


async def test_a_template_that_does_not_render_is_said_so(
    client: AsyncClient,  # noqa: F811
    runtime: Runtime,
) -> None:
    await place_order(client, order_id="8401", at="2026-11-20T09:59:00Z")
    [message_id] = await ids_of(runtime)
    async with runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == message_id).values(template="no-such-template")
        )
    await sign_in(client)
    page = await client.get(f"/dashboard/messages/{message_id}")
    assert page.status_code == 200 and "<iframe" not in page.text
    assert "This message cannot be shown: its template does not render" in page.text
    assert _fact(page, "template") == "no-such-template"
    email = await client.get(f"/dashboard/messages/{message_id}/email.html")
    assert email.status_code == 409 and "its template does not render" in email.text
