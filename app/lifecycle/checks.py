"""Whether a claimed message may still go out. Pure: decided from rows, not queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.rules.categories import category_path, same_need
from app.rules.facts import ItemFacts
from app.statuses import MessageKind, MessageStatus, OrderStatus

# Why a message waits (`paused`), and why it ends (`cancelled`) when its rule stays away.
RULE_MISSING = "rule_missing"
RULE_REMOVED = "rule_removed"


@dataclass(frozen=True)
class Purchase:
    """One item of an order, reduced to what rebuy checks compare."""

    sku: str | None
    category: str | None = None
    # Its categories in the compared form (the catalog product's; see ItemFacts.categories).
    categories: tuple[str, ...] = ()

    @classmethod
    def of(cls, item: ItemFacts) -> Purchase:
        return cls(sku=item.sku, category=item.category, categories=item.categories)

    @property
    def paths(self) -> tuple[str, ...]:
        if self.categories:
            return self.categories
        own = category_path(self.category) if self.category else ""
        return (own,) if own else ()


@dataclass(frozen=True)
class SendFacts:
    kind: str
    expires_at: datetime | None
    customer_deleted: bool
    email: str | None
    marketing_consent: bool
    suppressed: bool
    order_status: str | None
    # The rule as loaded now; rule_missing when a loaded rule set does not have it.
    rule_missing: bool = False
    skip_if: tuple[str, ...] = ()
    # What the message is about, and what the customer bought after it was planned.
    purchased: Sequence[Purchase] = field(default=())
    bought_since: Sequence[Purchase] = field(default=())


def send_blocker(facts: SendFacts, *, now: datetime) -> tuple[MessageStatus, str] | None:
    """The final state and reason that stop this message, or None when it should be sent.

    Checked at send time because consent, suppression, orders and rules change after planning.
    A missing rule holds the message (`paused`, not final): the rule may come back, and only
    RULE_GRACE later is it cancelled (app/jobs/missing_rules.py).
    """
    if facts.rule_missing:
        return MessageStatus.PAUSED, RULE_MISSING
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
    rebought = rebought_reason(facts.skip_if, facts.purchased, facts.bought_since)
    if rebought is not None:
        return MessageStatus.SKIPPED, rebought
    return None


def rebought_reason(
    skip_if: Sequence[str], purchased: Sequence[Purchase], bought_since: Sequence[Purchase]
) -> str | None:
    """Why a replenishment is moot: the customer already bought again."""
    if not bought_since:
        return None
    if "rebought_any" in skip_if:
        return "rebought_any"
    if "rebought_same_sku" in skip_if:
        skus = {item.sku for item in purchased if item.sku}
        if any(item.sku in skus for item in bought_since):
            return "rebought_same_sku"
    if "rebought_same_category" in skip_if:
        # "coffee/beans/arabica" and "coffee/beans" are the same need; "coffee" vs "tea" is not.
        categories = {path for item in purchased for path in item.paths}
        if any(
            same_need(path, category)
            for item in bought_since
            for path in item.paths
            for category in categories
        ):
            return "rebought_same_category"
    return None
