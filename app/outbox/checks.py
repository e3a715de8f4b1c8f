"""Whether a claimed message may still go out. Pure: decided from rows, not queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.models import MessageKind, MessageStatus, OrderStatus


@dataclass(frozen=True)
class SendFacts:
    kind: str
    expires_at: datetime | None
    customer_deleted: bool
    email: str | None
    marketing_consent: bool
    suppressed: bool
    order_status: str | None


def send_blocker(facts: SendFacts, *, now: datetime) -> tuple[MessageStatus, str] | None:
    """The final state and reason that stop this message, or None when it should be sent.

    Checked at send time because consent, suppression and orders change after planning.
    """
    if facts.customer_deleted:
        return MessageStatus.SKIPPED, "customer_deleted"
    if not facts.email:
        return MessageStatus.SKIPPED, "no_address"
    if facts.order_status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        return MessageStatus.CANCELLED, f"order_{facts.order_status}"
    if facts.expires_at is not None and now > facts.expires_at:
        return MessageStatus.EXPIRED, "past_expiry"
    if facts.suppressed:
        return MessageStatus.SKIPPED, "suppressed"
    if facts.kind == MessageKind.MARKETING and not facts.marketing_consent:
        return MessageStatus.SKIPPED, "no_consent"
    return None
