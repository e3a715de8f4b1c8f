"""What becomes of a message that falls due: send it, stop it, hold it, or defer it. Pure.

The dispatcher (app/outbox/dispatcher.py) and `simulate` both decide here; each gathers the
facts its own way (a batch of rows, or memory) and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app.lifecycle.checks import Purchase, SendFacts, send_blocker
from app.planner.limits import Capped, Defer, Skip, cap_decision, free_slot, span_start
from app.rules.model import Limit, Rule
from app.statuses import MessageStatus

# A message that gave way to a higher-ranked one due at the same time looks again this soon.
CAP_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Sent:
    """A message of the customer's that went out: it holds a cap slot from when it went."""

    at: datetime
    rule_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """Another message of the customer's that is due now (or being sent): of two, the higher
    rank (priority, then the older) takes a cap slot first, whichever worker looks first."""

    rule_id: str
    kind: str
    rank: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Send:
    """Go ahead: nothing stops it and the caps leave room."""


@dataclass(frozen=True, slots=True)
class Stop:
    """It ends (skipped, cancelled, expired) or, for a missing rule, is held (`paused`)."""

    status: MessageStatus
    reason: str


Decision = Send | Stop | Defer

SEND = Send()


@dataclass(frozen=True, slots=True)
class CapFacts:
    """What the frequency caps of one due message look at."""

    rank: tuple[int, int]  # (the rule's priority, -the message's id): higher goes first
    sent: Sequence[Sent] = ()
    waiting: Sequence[Waiting] = ()


def decide_due(
    facts: SendFacts,
    *,
    rule: Rule | None,
    limits: Mapping[str, Limit],
    caps: CapFacts,
    tz: ZoneInfo,
    now: datetime,
) -> Decision:
    """The one decision for a due message: the send-time checks first, then the caps."""
    blocker = send_blocker(facts, now=now)
    if blocker is not None:
        return Stop(*blocker)
    capped = frequency_cap(
        rule=rule,
        kind=facts.kind,
        kind_limit=limits.get(facts.kind),
        expires_at=facts.expires_at,
        caps=caps,
        tz=tz,
        now=now,
    )
    if isinstance(capped, Skip):
        return Stop(MessageStatus.SKIPPED, capped.reason)
    return capped or SEND


def frequency_cap(
    *,
    rule: Rule | None,
    kind: str,
    kind_limit: Limit | None,
    expires_at: datetime | None,
    caps: CapFacts,
    tz: ZoneInfo,
    now: datetime,
) -> Defer | Skip | None:
    """Whether the rule's and the kind's caps leave room now (None), or when to look again.

    Sent messages hold their slot from when they went; due messages of higher rank hold one
    now, so of two due together the higher-ranked goes and the other looks again shortly."""
    rule_limit = rule.limit if rule else None
    rule_id = rule.id if rule else None
    on = [limit for limit in (rule_limit, kind_limit) if limit is not None]
    if not on:
        return None
    since = span_start(now, on)
    sent = [entry for entry in caps.sent if entry.at > since]
    ahead = [entry for entry in caps.waiting if entry.rank > caps.rank]

    def capped(*, with_ahead: bool) -> list[Capped]:
        found = []
        if rule_limit is not None:
            taken = [entry.at for entry in sent if entry.rule_id == rule_id]
            if with_ahead:
                taken += [now for entry in ahead if entry.rule_id == rule_id]
            found.append(Capped(rule_limit, taken))
        if kind_limit is not None:
            taken = [entry.at for entry in sent if entry.kind == kind]
            if with_ahead:
                taken += [now for entry in ahead if entry.kind == kind]
            found.append(Capped(kind_limit, taken))
        return found

    decision = cap_decision(
        now=now,
        caps=capped(with_ahead=False),
        expires_at=expires_at,
        window=rule.send_window.window if rule and rule.send_window else None,
        tz=tz,
    )
    if decision is not None or not ahead or free_slot(now, capped(with_ahead=True)) == now:
        return decision
    # A higher-ranked message due now takes the slot; once it is decided, this one sees the
    # real next free slot.
    recheck = now + CAP_RECHECK
    if expires_at is not None and recheck > expires_at:
        return Skip()
    return Defer(recheck)


def cap_limits(rule: Rule | None, kind: str, limits: Mapping[str, Limit]) -> list[Limit]:
    """The caps a message is under: its rule's and its kind's."""
    found = (rule.limit if rule else None, limits.get(kind))
    return [limit for limit in found if limit is not None]


def bought_after(
    placed_at: datetime | None, purchases: Iterable[tuple[datetime, Purchase]]
) -> list[Purchase]:
    """What was bought after `placed_at` (from the customer's other standing orders, each
    purchase with its order's time): what a rebuy check compares the message's items with."""
    if placed_at is None:
        return []
    return [purchase for at, purchase in purchases if at > placed_at]
