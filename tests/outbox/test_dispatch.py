"""From webhook to a real SMTP server: what arrives, and what the outbox records."""

from __future__ import annotations

from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select, update

from app.mail.sender import SmtpPool
from app.mail.templates import TemplateRenderer
from app.models import Customer, Message, MessageAttempt, Suppression
from app.outbox.dispatcher import Dispatcher
from app.rules.source import RulesSource
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, order_event, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink


async def messages(runtime: Runtime) -> list[Message]:
    async with runtime.session_factory() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def test_order_to_thank_you_in_the_mailbox(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created(email="anna@example.org", first_name="Anna"))
    report = await dispatcher.run_once()
    assert report.outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    assert mail.recipients == ["anna@example.org"]
    assert "anna@example.org" in str(mail.message["To"])
    assert "Thank you" in str(mail.message["Subject"])
    text = mail.part("text/plain")
    assert "Anna" in text and "Diapers M, 60 pcs" in text
    assert "Diapers M, 60 pcs" in mail.part("text/html")
    [message] = await messages(runtime)
    assert message.status == "sent"
    assert message.smtp_message_id == str(mail.message["Message-ID"])
    assert message.recipient == "anna@example.org" and message.attempts == 1


async def test_russian_customer_gets_russian_mail_and_fallback_name(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created(locale="ru", first_name=None))
    await dispatcher.run_once()
    [mail] = smtp_sink.received
    text = mail.part("text/plain")
    assert "Спасибо" in str(mail.message["Subject"]) or "Спасибо" in text
    assert "None" not in text


async def test_duplicate_webhooks_give_one_mail(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    body = order_created()
    for _ in range(3):
        await post_event(client, body)
    await dispatcher.run_once()
    await dispatcher.run_once()
    assert len(smtp_sink.received) == 1


async def test_cancelled_before_send_time_is_never_sent(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    clock: FrozenClock,
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: follow-up\n    kind: transactional\n    when: {event: order.created}\n"
        "    send: {after: 3d}\n    template: thank-you\n",
    )
    clock.current = clock.current.replace(year=2026, month=11, day=20, hour=10)
    await post_event(client, order_created(order_id="900"))
    assert (await dispatcher.run_once()).claimed == 0  # not due yet
    await post_event(client, order_event("order.cancelled", "900"))
    clock.advance(days=4)
    assert (await dispatcher.run_once()).claimed == 0
    assert smtp_sink.received == []
    [message] = await messages(runtime)
    assert (message.status, message.status_reason) == ("cancelled", "order_cancelled")


async def test_451_then_250_delivers_once(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    replies = iter(["451 4.3.0 Try again later"])
    smtp_sink.rcpt_reply = lambda _address: next(replies, None)
    await post_event(client, order_created())
    assert (await dispatcher.run_once()).outcomes == {"retry": 1}
    [message] = await messages(runtime)
    assert message.status == "scheduled" and "451" in (message.last_error or "")
    assert message.next_attempt_at > clock.now()
    assert (await dispatcher.run_once()).claimed == 0  # backing off
    clock.advance(seconds=120)  # past the first backoff (60 s base, jittered up to 60 s)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 1
    [message] = await messages(runtime)
    assert (message.status, message.attempts) == ("sent", 2)
    async with runtime.session_factory() as session:
        attempts = (
            await session.execute(
                select(MessageAttempt.outcome, MessageAttempt.smtp_code).order_by(
                    MessageAttempt.attempt
                )
            )
        ).all()
    assert [tuple(row) for row in attempts] == [("retry", 451), ("sent", 250)]


async def test_550_fails_and_suppresses(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 No such user"
    await post_event(client, order_created(email="Gone@Example.org", order_id="1"))
    assert (await dispatcher.run_once()).outcomes == {"failed": 1}
    [message] = await messages(runtime)
    assert (message.status, message.status_reason) == ("failed", "hard_bounce")
    assert "550" in (message.last_error or "")
    async with runtime.session_factory() as session:
        suppression = (await session.execute(select(Suppression))).scalar_one()
    assert (suppression.email, suppression.reason) == ("gone@example.org", "hard_bounce")
    # A later order for the same address is not sent: the address is suppressed, which
    # planning already sees.
    smtp_sink.rcpt_reply = lambda _address: None
    await post_event(client, order_created(email="gone@example.org", order_id="2"))
    assert (await dispatcher.run_once()).claimed == 0
    later = (await messages(runtime))[-1]
    assert (later.status, later.status_reason) == ("skipped", "suppressed")
    assert smtp_sink.received == []


async def test_retries_stop_at_the_limit(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    runtime.settings.max_attempts = 3
    smtp_sink.rcpt_reply = lambda _address: "450 4.2.1 Mailbox temporarily unavailable"
    await post_event(client, order_created())
    outcomes = []
    for _ in range(3):
        outcomes.append((await dispatcher.run_once()).outcomes)
        clock.advance(hours=1)
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"failed": 1}]
    [message] = await messages(runtime)
    assert (message.status, message.status_reason, message.attempts) == (
        "failed",
        "retries_exhausted",
        3,
    )


async def test_mail_due_during_downtime_goes_out_unless_expired(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    clock.current = clock.current.replace(year=2026, month=11, day=20, hour=10, minute=0)
    await post_event(client, order_created(order_id="10", created_at="2026-11-20T09:59:00Z"))
    await post_event(client, order_created(order_id="11", created_at="2026-11-18T09:00:00Z"))
    # The service was down; the thank-you rule expires 2 days after its send time.
    report = await dispatcher.run_once()
    assert report.outcomes == {"sent": 1, "expired": 1}
    by_order = {message.order_id: message for message in await messages(runtime)}
    statuses = sorted((m.status, m.status_reason) for m in by_order.values())
    assert statuses == [("expired", "past_expiry"), ("sent", None)]
    assert len(smtp_sink.received) == 1


async def test_marketing_needs_consent_at_send_time(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "defaults: {kind: marketing}\nrules:\n  - id: promo\n    when: {event: order.created}\n"
        "    template: thank-you\n",
    )
    await post_event(
        client, order_created(customer_id="yes", email="yes@example.org", consent=True)
    )
    withdrawn = order_created(customer_id="no", email="no@example.org", consent=True)
    await post_event(client, withdrawn)
    await post_event(
        client, order_created(customer_id="never", email="never@example.org", consent=False)
    )
    # Without consent when the order comes, the message is skipped right away...
    never = [m for m in await messages(runtime) if m.status == "skipped"]
    assert [m.status_reason for m in never] == ["no_consent"]
    # ... consent withdrawn by a webhook stops waiting mail at once ...
    await post_event(
        client,
        {
            "id": "withdraw",
            "type": "customer.updated",
            "occurred_at": "2026-11-20T10:00:30Z",
            "customer": {**withdrawn["customer"], "marketing_consent": False},
        },
    )
    skipped = [m for m in await messages(runtime) if m.status == "skipped"]
    assert [m.status_reason for m in skipped] == ["no_consent", "no_consent"]
    # ... and consent is checked again at send time, whatever changed it.
    await post_event(
        client, order_created(customer_id="quiet", email="quiet@example.org", consent=True)
    )
    async with runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Customer).where(Customer.external_id == "quiet").values(marketing_consent=False)
        )
    report = await dispatcher.run_once()
    assert report.outcomes == {"sent": 1, "skipped": 1}
    assert [mail.recipients for mail in smtp_sink.received] == [["yes@example.org"]]
    skipped = [m for m in await messages(runtime) if m.status == "skipped"]
    assert [m.status_reason for m in skipped] == ["no_consent"] * 3


async def test_suppression_added_after_planning_is_honoured(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created(email="later@example.org"))
    async with runtime.session_factory() as session, session.begin():
        session.add(Suppression(email="later@example.org", reason="unsubscribe"))
    assert (await dispatcher.run_once()).outcomes == {"skipped": 1}
    assert smtp_sink.received == []


async def test_sample_restock_mail_lists_only_the_items_its_rule_is_about(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    import shutil

    from app.config import ROOT

    shutil.copy(ROOT / "rules" / "diapers-restock.yaml", tmp_path)
    runtime.rules = RulesSource(tmp_path)
    assert runtime.rules.reload()
    body = order_created(
        items=[
            {"sku": "DIAPER-M-60", "name": "Diapers M", "category": "baby/diapers", "quantity": 1},
            {"sku": "PAPER-A4", "name": "Printer paper", "category": "office/paper", "quantity": 1},
        ]
    )
    await post_event(client, body)
    clock.advance(days=8)  # one pack: the start of 1w..2w, then the mon-sat 09-20 window
    report = await dispatcher.drain()
    assert report.outcomes == {"sent": 1}
    text = smtp_sink.received[0].part("text/plain")
    assert "Diapers M" in text and "Printer paper" not in text


async def test_html_the_parser_refuses_fails_the_message_instead_of_retrying_forever(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # `<![foo[` makes the standard library's HTML parser raise AssertionError while the text
    # part is derived from the HTML: a render error, not a crash that leaves the message
    # `sending` to be claimed again and again.
    folder = tmp_path / "templates" / "odd" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Hi")
    (folder / "body.html").write_text('<p><![foo[ x ]]><a href="https://shop.example/">x</a>')
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: odd\n    when: {event: order.created}\n    template: odd\n",
    )
    dispatcher = Dispatcher(
        runtime=runtime,
        sender=SmtpPool(runtime.settings.smtp),
        renderer=TemplateRenderer(tmp_path / "templates", default_locale="en"),
    )
    await post_event(client, order_created())
    try:
        assert (await dispatcher.run_once()).outcomes == {"failed": 1}
    finally:
        await dispatcher.sender.close()
    [message] = await messages(runtime)
    assert (message.status, message.status_reason) == ("failed", "render_error")
    assert "unknown status keyword 'foo'" in (message.last_error or "")
    assert smtp_sink.received == []
