"""Whether a claimed message may still go out. Pure: decided from rows, not queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.rules.categories import category_path, same_need
from app.rules.facts import ItemFacts
from app.rules.model import Exit, RuleIf, StepIf
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
class SequenceFacts:
    """What a step of a sequence is decided on: its `if:` (about the previous step) and the
    rule's `exit:`, and what happened since. Opens and clicks are a person's only."""

    step: int
    condition: StepIf | None = None
    exit: Exit | None = None
    # The previous step's mail: opened, clicked, its survey answered.
    opened: bool = False
    clicked: bool = False
    answered: bool = False
    # What the sequence is about (its items), and what was bought since the previous step
    # and since the sequence's event.
    purchased: Sequence[Purchase] = field(default=())
    bought_since_previous: Sequence[Purchase] = field(default=())
    bought_since_event: Sequence[Purchase] = field(default=())


# A step skipped by its own `if:` has a reason starting so; the sequence goes on after it.
IF_REASON = "if_"
# ... unless the rule's own `if:` stopped it (one reason per key): that ends the sequence.
RULE_IF_REASONS = frozenset(IF_REASON + key for key in RuleIf.model_fields)


def exit_reason(facts: SequenceFacts, *, marketing_consent: bool) -> str | None:
    """Why the sequence ends here (`exit:`), or None."""
    rule_exit = facts.exit
    if rule_exit is None:
        return None
    if rule_exit.purchased is not None and bought(
        rule_exit.purchased, facts.purchased, facts.bought_since_event
    ):
        return "exit_purchased"
    if rule_exit.unsubscribed and not marketing_consent:
        return "exit_unsubscribed"
    return None


def unmet_condition(facts: SequenceFacts) -> str | None:
    """The first condition of the step's `if:` that does not hold (`if_<key>`), or None."""
    condition = facts.condition
    if condition is None:
        return None
    since = facts.bought_since_previous
    checks = (
        ("opened", condition.opened, facts.opened),
        ("not_opened", condition.not_opened, not facts.opened),
        ("clicked", condition.clicked, facts.clicked),
        ("not_clicked", condition.not_clicked, not facts.clicked),
        ("answered", condition.answered, facts.answered),
        ("not_answered", condition.not_answered, not facts.answered),
    )
    for key, wanted, holds in checks:
        if wanted and not holds:
            return IF_REASON + key
    if condition.purchased is not None and not bought(condition.purchased, facts.purchased, since):
        return IF_REASON + "purchased"
    if condition.not_purchased is not None and bought(
        condition.not_purchased, facts.purchased, since
    ):
        return IF_REASON + "not_purchased"
    return None


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
    # For a rule with `steps` or `exit`: what its `if:` and `exit:` decide on.
    sequence: SequenceFacts | None = None
    # The rule's own `if:`, and the customer's standing orders now (None: not counted, as
    # while planning: then `orders` is not checked).
    condition: RuleIf | None = None
    orders: int | None = None


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
    sequence = facts.sequence
    if sequence is not None:
        ended = exit_reason(sequence, marketing_consent=facts.marketing_consent)
        if ended is not None:
            return MessageStatus.SKIPPED, ended
    if facts.suppressed:
        return MessageStatus.SKIPPED, "suppressed"
    if facts.kind == MessageKind.MARKETING and not facts.marketing_consent:
        return MessageStatus.SKIPPED, "no_consent"
    rebought = rebought_reason(facts.skip_if, facts.purchased, facts.bought_since)
    if rebought is not None:
        return MessageStatus.SKIPPED, rebought
    condition = facts.condition
    if (
        condition is not None
        and facts.orders is not None
        and not condition.orders_hold(facts.orders)
    ):
        return MessageStatus.SKIPPED, IF_REASON + "orders"
    # Last: a step skipped by its own `if:` lets the sequence go on (app/lifecycle/steps.py).
    unmet = unmet_condition(sequence) if sequence is not None else None
    if unmet is not None:
        return MessageStatus.SKIPPED, unmet
    return None


def rebought_reason(
    skip_if: Sequence[str], purchased: Sequence[Purchase], bought_since: Sequence[Purchase]
) -> str | None:
    """Why a replenishment is moot: the customer already bought again."""
    if not bought_since:
        return None
    for scope in ("any", "same_sku", "same_category"):
        if f"rebought_{scope}" in skip_if and bought(scope, purchased, bought_since):
            return f"rebought_{scope}"
    return None


def bought(scope: str, purchased: Sequence[Purchase], bought_since: Sequence[Purchase]) -> bool:
    """Whether `bought_since` holds a purchase of `scope` (any, same_sku, same_category) as
    the message's items (`purchased`)."""
    if not bought_since:
        return False
    if scope == "any":
        return True
    if scope == "same_sku":
        skus = {item.sku for item in purchased if item.sku}
        return any(item.sku in skus for item in bought_since)
    # "coffee/beans/arabica" and "coffee/beans" are the same need; "coffee" vs "tea" is not.
    categories = {path for item in purchased for path in item.paths}
    return any(
        same_need(path, category)
        for item in bought_since
        for path in item.paths
        for category in categories
    )
