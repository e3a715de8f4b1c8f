"""Every message names itself: a VERP envelope sender and an X-Aftersale-Message header, as
they arrive at a real SMTP server from the real dispatcher."""

from __future__ import annotations

import json

from httpx import AsyncClient

from app.feedback.references import (
    make_reference,
    read_reference,
    reference_in_address,
    verp_address,
)
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.feedback.conftest import BOUNCE_ADDRESS, send_one
from tests.smtp_sink import SmtpSink

SECRET = "a-secret-key-of-the-shop-0123456789"


def test_a_reference_names_one_message_and_cannot_be_made_without_the_key() -> None:
    first, second = make_reference(1, secret=SECRET), make_reference(2, secret=SECRET)
    assert len(first) == 29 and first.isalnum() and first == first.lower()
    assert read_reference(first, secret=SECRET) == 1
    assert read_reference(second.upper(), secret=SECRET) == 2  # a server that upper-cases
    # Neighbours share nothing that shows the sequence.
    assert sum(a == b for a, b in zip(first, second, strict=True)) < 10
    assert read_reference(first, secret="another-key-entirely-0123456789") is None
    tampered = first[:-1] + ("a" if first[-1] != "a" else "b")
    assert read_reference(tampered, secret=SECRET) is None
    for garbage in ("", "x" * 29, first + "a", "../../etc/passwd", "0" * 29):
        assert read_reference(garbage, secret=SECRET) is None


def test_verp_addresses_round_trip() -> None:
    reference = make_reference(908_172_635_441, secret=SECRET)
    address = verp_address(BOUNCE_ADDRESS, reference)
    assert address == f"bounces+{reference}@mail.shop-feedback.de"
    assert reference_in_address(f"<{address.upper()}>", BOUNCE_ADDRESS) == reference
    assert reference_in_address("bounces@mail.shop-feedback.de", BOUNCE_ADDRESS) is None
    assert reference_in_address(f"bounces+{reference}@evil.example", BOUNCE_ADDRESS) is None


async def test_sent_mail_carries_a_verp_envelope_and_the_reference_header(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    reference = sent.reference
    assert read_reference(reference, secret=runtime.settings.secret_key) == sent.message_id
    assert sent.received.envelope_from == f"bounces+{reference}@mail.shop-feedback.de"
    assert sent.received.recipients == ["juergen.weiss@example.org"]
    # The From the reader sees is unchanged; the header is not the raw id.
    assert str(sent.received.message["From"]).endswith(f"<{runtime.settings.from_address[1]}>")
    assert str(sent.message_id) not in reference


async def test_without_a_bounce_address_the_envelope_is_from_and_the_header_stays(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    runtime.settings.bounce_address = None
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    assert sent.received.envelope_from == runtime.settings.from_address[1]
    assert read_reference(sent.reference, secret=runtime.settings.secret_key) == sent.message_id


async def test_the_provider_metadata_header_echoes_the_reference(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    runtime.settings.mail_provider = "sendgrid"
    sent = await send_one(client, runtime, dispatcher, smtp_sink, customer_id="c-sg")
    smtpapi = json.loads(str(sent.received.message["X-SMTPAPI"]))
    assert smtpapi == {"unique_args": {"aftersale": sent.reference}}
    runtime.settings.mail_provider = "mailgun"
    sent = await send_one(client, runtime, dispatcher, smtp_sink, customer_id="c-mg")
    variables = json.loads(str(sent.received.message["X-Mailgun-Variables"]))
    assert variables == {"aftersale": sent.reference}
    runtime.settings.mail_provider = "postmark"
    sent = await send_one(client, runtime, dispatcher, smtp_sink, customer_id="c-pm")
    assert str(sent.received.message["X-PM-Metadata-aftersale"]) == sent.reference
