"""DSN and ARF mail delivered over real SMTP to `serve --role inbound`'s listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.feedback.inbound import InboundListener
from app.models import MailFeedbackEvent, Message, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api
from tests.factories import order_created, post_event
from tests.feedback.conftest import send_one
from tests.feedback.samples import arf, dsn
from tests.mail.test_unsubscribe import MARKETING, changes, consent
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink, free_port


@pytest.fixture
async def inbound(runtime: Runtime) -> AsyncIterator[int]:
    listener = InboundListener(runtime, host="127.0.0.1", port=free_port())
    await listener.start()
    yield listener.port
    await listener.stop()


async def deliver(port: int, raw: bytes, *, to: str) -> None:
    # As an MTA sends a bounce: from the null reverse path, MAIL FROM:<>.
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    try:
        await client.mail("")
        await client.rcpt(to)
        reply = await client.data(raw)
    finally:
        await client.quit()
    assert reply.code == 250, reply


async def rows(runtime: Runtime) -> tuple[list[MailFeedbackEvent], list[Suppression]]:
    async with runtime.session_factory() as session:
        events = list((await session.execute(select(MailFeedbackEvent))).scalars())
        suppressions = list((await session.execute(select(Suppression))).scalars())
    return events, suppressions


async def test_a_dsn_to_the_verp_address_suppresses_once(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    inbound: int,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    verp = sent.received.envelope_from
    bounce = dsn(sent.received.raw, to=verp)
    await deliver(inbound, bounce, to=verp)
    await deliver(inbound, bounce, to=verp)  # the MTA retried: recorded once

    events, suppressions = await rows(runtime)
    assert [(e.message_id, e.provider, e.kind, e.recipient) for e in events] == [
        (sent.message_id, "mail", "hard_bounce", "juergen.weiss@example.org")
    ]
    assert [(s.email, s.reason) for s in suppressions] == [
        ("juergen.weiss@example.org", "hard_bounce")
    ]
    assert suppressions[0].detail is not None and suppressions[0].detail.startswith("mail: DSN")

    # The next order's mail to the address is not sent.
    await send_blocked(client, runtime, dispatcher, smtp_sink)


async def send_blocked(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    from tests.factories import order_created, post_event

    before = len(smtp_sink.received)
    await post_event(
        client, order_created(customer_id="7204811530221", email="juergen.weiss@example.org")
    )
    await dispatcher.run_once()
    async with runtime.session_factory() as session:
        newest = (
            await session.execute(select(Message).order_by(Message.id.desc()).limit(1))
        ).scalar_one()
    assert (newest.status, newest.status_reason) == ("skipped", "suppressed")
    assert len(smtp_sink.received) == before


async def test_a_soft_bounce_is_counted_and_suppresses_nothing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    inbound: int,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    verp = sent.received.envelope_from
    full = dsn(
        sent.received.raw,
        to=verp,
        action="delayed",
        status="4.2.2",
        diagnostic="smtp; 452 4.2.2 Mailbox full",
    )
    await deliver(inbound, full, to=verp)
    events, suppressions = await rows(runtime)
    assert [(e.message_id, e.kind) for e in events] == [(sent.message_id, "soft_bounce")]
    assert suppressions == []


async def test_an_arf_complaint_names_the_message_by_its_header(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    inbound: int,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    # The feedback loop writes to its own address and redacts the recipient.
    redacted = sent.received.raw.replace(b"juergen.weiss@example.org", b"xxxxxx@xxxxxxx.xxx")
    await deliver(inbound, arf(redacted), to="fbl@mail.shop-feedback.de")
    events, suppressions = await rows(runtime)
    assert [(e.message_id, e.kind, e.recipient) for e in events] == [
        (sent.message_id, "complaint", "juergen.weiss@example.org")
    ]
    assert [(s.email, s.reason) for s in suppressions] == [
        ("juergen.weiss@example.org", "complaint")
    ]


async def test_mail_that_is_no_report_is_accepted_and_dropped(
    runtime: Runtime, inbound: int
) -> None:
    await deliver(
        inbound,
        b"From: anna@example.org\r\nSubject: Re: thanks\r\n\r\nThank you too!\r\n",
        to="bounces@mail.shop-feedback.de",
    )
    assert await rows(runtime) == ([], [])


async def test_the_customer_export_lists_their_bounces(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    inbound: int,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    await deliver(inbound, dsn(sent.received.raw, to=sent.received.envelope_from), to="x@y.z")
    export = await client.get("/api/v1/customers/7204811530221/export", headers=api.headers)
    [event] = export.json()["mail_feedback"]
    assert (event["message_id"], event["provider"], event["kind"], event["recipient"]) == (
        sent.message_id,
        "mail",
        "hard_bounce",
        "juergen.weiss@example.org",
    )


async def test_a_mail_to_the_list_unsubscribe_address_stops_marketing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    inbound: int,
    tmp_path: Path,
) -> None:
    # INBOUND_DOMAIN defaults to BOUNCE_ADDRESS's domain: one MX receives both.
    runtime.settings = runtime.settings.model_validate(
        runtime.settings.model_dump() | {"bounce_address": "bounces@mail.shop.example"}
    )
    assert runtime.settings.inbound_domain == "mail.shop.example"
    use_rules(runtime, tmp_path, MARKETING % "0m")
    await post_event(client, order_created())
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    header = str(smtp_sink.received[0].message["List-Unsubscribe"])
    mailto = header.split("<mailto:", 1)[1].split(">", 1)[0]
    assert mailto.endswith("@mail.shop.example")

    # What a mail client's "Unsubscribe" button sends, over real SMTP to the listener.
    client_mail = (
        b"From: anna@example.org\r\nTo: " + mailto.encode() + b"\r\n"
        b"Subject: unsubscribe\r\n\r\nThis message was automatically generated by Gmail.\r\n"
    )
    await deliver(inbound, client_mail, to=mailto)
    assert await consent(runtime) is False
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [("marketing_off", "mailto")]
    # A made-up token changes nothing, and is still answered 250 (no probing for valid ones).
    await deliver(
        inbound,
        client_mail,
        to="unsubscribe+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@mail.shop.example",
    )
    assert len(await changes(runtime)) == 1
