"""Sender identity: every Message-ID ends in the domain of FROM (lower-cased, as on the wire),
whether the dispatcher, the preview or `aftersale send-test` made the message."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.cli import main
from app.config import Settings
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.mail.test_preview import cli_env
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

SENDER = "Kaffeerösterei Müller <post@Kaffee-Mueller.de>"
WIRE_DOMAIN = "kaffee-mueller.de"


async def test_dispatched_mail_has_a_message_id_at_the_sender_domain(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"mail_from": SENDER})
    dispatcher = make_dispatcher(runtime, "identity")
    try:
        await post_event(client, order_created(email="anna@example.org"))
        assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    finally:
        await dispatcher.sender.close()
    [mail] = smtp_sink.received
    message_id = str(mail.message["Message-ID"])
    assert message_id.startswith("<") and message_id.endswith(f"@{WIRE_DOMAIN}>")


def test_send_test_has_a_message_id_at_the_sender_domain(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, smtp_sink: SmtpSink
) -> None:
    cli_env(monkeypatch, settings)
    monkeypatch.setenv("AFTERSALE_FROM", "Teeladen Anna <post@teeladen-anna.de>")
    assert main(["send-test", "thank-you", "--to", "qa@teeladen-anna.de"]) == 0
    [mail] = smtp_sink.received
    assert str(mail.message["Message-ID"]).endswith("@teeladen-anna.de>")


async def test_preview_has_a_message_id_at_the_sender_domain(
    client: AsyncClient, runtime: Runtime
) -> None:
    from app.events import OrderPlaced
    from app.mail.templates import TemplateRenderer
    from app.preview.service import compose_preview

    settings = runtime.settings.model_copy(update={"mail_from": SENDER})
    event = OrderPlaced.model_validate(order_created(email="anna@example.org"))
    email = compose_preview(
        settings=settings,
        renderer=TemplateRenderer(settings.templates_dir, default_locale="en"),
        template="thank-you",
        event=event,
        shop="default",
        rule=None,
        locale=None,
        now=runtime.clock.now(),
    )
    assert email.message_id.endswith(f"@{WIRE_DOMAIN}>")
