"""International addresses (issue 15, item 6): punycode on the envelope, SMTPUTF8 when needed.

`anna@münchen.de` used to fail before it left: the envelope refused non-ASCII. Now the
domain goes as punycode; a non-ASCII local part goes with SMTPUTF8 when the server offers it,
and fails clearly (reason `smtputf8_unsupported`) when it does not.
"""

from __future__ import annotations

from sqlalchemy import select

from app.models import Customer, Message, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.factories import seed_due_messages
from tests.smtp_sink import SmtpSink


async def outcomes(runtime: Runtime) -> dict[str, tuple[str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Customer.email, Message.status, Message.status_reason).join(
                Customer, Customer.id == Message.customer_id
            )
        )
        return {email: (status, reason) for email, status, reason in rows.all()}


async def test_idn_domain_goes_as_punycode_on_the_envelope_and_in_to(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await seed_due_messages(runtime, "anna@münchen.de")
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    assert mail.recipients == ["anna@xn--mnchen-3ya.de"]
    assert mail.message["To"].addresses[0].domain == "xn--mnchen-3ya.de"


async def test_utf8_local_part_uses_smtputf8_when_offered(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    smtp_sink.smtputf8 = True
    smtp_sink.start()
    await seed_due_messages(runtime, "jörg@beispiel.de", "anna@example.org")
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    assert sorted(mail.recipients[0] for mail in smtp_sink.received) == [
        "anna@example.org",
        "jörg@beispiel.de",
    ]


async def test_utf8_local_part_fails_clearly_without_smtputf8(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await seed_due_messages(runtime, "jörg@beispiel.de", "anna@example.org")
    assert (await dispatcher.run_once()).outcomes == {"sent": 1, "failed": 1}
    assert await outcomes(runtime) == {
        "jörg@beispiel.de": ("failed", "smtputf8_unsupported"),
        "anna@example.org": ("sent", None),
    }
    async with runtime.session_factory() as session:
        error = (
            await session.execute(select(Message.last_error).where(Message.status == "failed"))
        ).scalar_one()
        assert error is not None and "SMTPUTF8" in error
        # Not the address's fault: it stays mailable on a server that can take it.
        assert (await session.execute(select(Suppression))).first() is None
    assert [mail.recipients for mail in smtp_sink.received] == [["anna@example.org"]]
