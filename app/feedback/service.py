"""Apply bounces and complaints: record each once, suppress what must not be mailed again.

- a hard bounce suppresses the address (reason `hard_bounce`, the detail names the source);
- a complaint suppresses it at once (reason `complaint`). Suppressed addresses get no mail
  from aftersale at all, marketing or transactional: what aftersale sends after a sale
  (thank-you, delivery check, surveys) is not essential mail the shop must deliver (order
  confirmations and receipts come from the shop platform), and mailbox providers count a
  complaint against every later message to that person (docs/deliverability.md);
- a soft bounce is recorded and counted in the stats, nothing more.

The service never commits: the request or the job that opened the session does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.erasures import is_erased_address
from app.feedback import repository
from app.feedback.model import Feedback
from app.feedback.references import read_reference
from app.models import FeedbackKind, SuppressionReason
from app.suppressions.repository import suppress

log = logging.getLogger(__name__)

_SUPPRESSES = {
    FeedbackKind.HARD_BOUNCE: SuppressionReason.HARD_BOUNCE,
    FeedbackKind.COMPLAINT: SuppressionReason.COMPLAINT,
}


@dataclass
class Applied:
    recorded: int = 0
    duplicates: int = 0
    suppressed: int = 0
    # Recorded without a message of ours (nothing named one we sent): still applied to the
    # address, not counted in any rule's stats.
    unmatched: int = 0

    def add(self, other: Applied) -> None:
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.suppressed += other.suppressed
        self.unmatched += other.unmatched


async def apply_feedback(
    session: AsyncSession, *, reports: Sequence[Feedback], secret: str, now: datetime
) -> Applied:
    """Record each report once (by provider and event id) and apply what it means."""
    applied = Applied()
    for report in reports:
        sent = await _find_message(session, report, secret=secret, now=now)
        # The address we sent to, when we know the message: a forwarding mailbox may report
        # its own final address, but ours is the one to stop mailing.
        recipient = (sent[1] if sent and sent[1] else None) or report.recipient
        # About someone erased: counted, but neither the address nor the text quoting it.
        erased = recipient is not None and await is_erased_address(session, recipient)
        event_id = await repository.record_event(
            session,
            provider=report.provider,
            provider_event_id=report.event_id,
            kind=report.kind,
            message_id=sent[0] if sent else None,
            recipient=recipient.lower() if recipient and not erased else None,
            detail=None if erased else report.detail,
            received_at=now,
        )
        if event_id is None:
            applied.duplicates += 1
            continue
        applied.recorded += 1
        applied.unmatched += sent is None
        reason = _SUPPRESSES.get(FeedbackKind(report.kind))
        if reason is not None and recipient:
            await suppress(
                session,
                email=recipient,
                reason=reason,
                detail=f"{report.provider}: {report.detail}",
            )
            applied.suppressed += 1
        # Ids and kinds only: addresses stay out of logs.
        log.info(
            "mail feedback %s from %s for message %s",
            report.kind,
            report.provider,
            sent[0] if sent else "unknown",
        )
    return applied


async def _find_message(
    session: AsyncSession, report: Feedback, *, secret: str, now: datetime
) -> repository.Sent | None:
    if report.reference:
        message_id = read_reference(report.reference, secret=secret)
        if message_id is not None and (found := await repository.sent_message(session, message_id)):
            return found
    if report.smtp_message_id:
        found = await repository.message_by_smtp_id(session, report.smtp_message_id)
        if found:
            return found
    if report.recipient:
        return await repository.latest_sent_to(session, report.recipient, before=now)
    return None
