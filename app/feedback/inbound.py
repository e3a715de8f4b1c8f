"""The inbound SMTP listener: DSN and ARF mail delivered to BOUNCE_ADDRESS (and to a feedback
loop address) by the sending MTA or the mailbox providers, and mail to the List-Unsubscribe
address (`unsubscribe+<token>@INBOUND_DOMAIN`).

It runs in the process's own event loop (`serve --role inbound`, or `--role all` when
INBOUND_SMTP_PORT is set), so each message is applied in one short transaction before the
250 reply: a 250 means recorded. It accepts mail for any address and never relays; mail that
is no report is answered 250 and dropped. A database fault answers 451, so the sender
retries.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from app.db import transaction
from app.feedback.reports import parse_report
from app.feedback.service import Applied, apply_feedback
from app.mail.unsubscribe import MAILTO_PREFIX
from app.runtime import Runtime
from app.unsubscribe.service import unsubscribe_by_mail

log = logging.getLogger(__name__)


async def apply_report_mail(
    runtime: Runtime, raw: bytes, *, envelope_recipients: list[str]
) -> Applied:
    """Parse one piece of mail and apply its feedback in its own transaction; a mail to the
    List-Unsubscribe address `unsubscribe+<token>@INBOUND_DOMAIN` unsubscribes from marketing."""
    settings = runtime.settings
    unsubscribes = [
        local
        for local, _, _ in (recipient.rpartition("@") for recipient in envelope_recipients)
        if local.lower().startswith(MAILTO_PREFIX)
    ]
    if unsubscribes:
        async with transaction(runtime.session_factory) as session:
            for local in unsubscribes:
                if not await unsubscribe_by_mail(
                    session,
                    local_part=local,
                    secrets=settings.unsubscribe_secrets,
                    now=runtime.clock.now(),
                ):
                    log.info("inbound unsubscribe mail with a token that is not ours: ignored")
        return Applied()
    reports = parse_report(
        raw, envelope_recipients=envelope_recipients, bounce_address=settings.bounce_address
    )
    if not reports:
        log.info("inbound mail without a bounce or complaint report: ignored")
        return Applied()
    async with transaction(runtime.session_factory) as session:
        return await apply_feedback(
            session, reports=reports, secret=settings.secret_key, now=runtime.clock.now()
        )


class ReportHandler:
    """aiosmtpd handler: every message goes through `apply_report_mail`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "surrogateescape")
        try:
            await apply_report_mail(
                self.runtime, raw, envelope_recipients=[str(r) for r in envelope.rcpt_tos]
            )
        except Exception:
            log.exception("inbound report could not be recorded; the sender will retry")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 2.0.0 OK"


class InboundListener:
    def __init__(self, runtime: Runtime, *, host: str, port: int) -> None:
        self.runtime = runtime
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        factory: Any = partial(
            SMTP,
            ReportHandler(self.runtime),
            data_size_limit=self.runtime.settings.inbound_max_bytes,
            hostname="aftersale",
            # Bounce senders retry; nobody should hold a connection open for long.
            timeout=60,
        )
        self._server = await asyncio.get_running_loop().create_server(
            factory, host=self.host, port=self.port
        )
        log.info("inbound SMTP listener for bounces and complaints on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def inbound_listener(runtime: Runtime) -> InboundListener | None:
    """The listener INBOUND_SMTP_PORT asks for, or None."""
    port = runtime.settings.inbound_smtp_port
    if port is None:
        return None
    return InboundListener(runtime, host=runtime.settings.inbound_smtp_host, port=port)
