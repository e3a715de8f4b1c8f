"""Sequences: what a rule's later steps are decided on, and when the next one is planned.
Pure; the dispatcher and `simulate` both call these (docs/rules.md, "Sequences").

Steps are planned lazily: step k + 1 only once step k is decided. After it was sent, from
when it went; after it was held out, held out too (from when it was due), so the control
group stays comparable; after it was skipped by its own `if:`, from when it was due. Any
other end (cancelled, expired, failed, skipped for consent, suppression, `exit:`, the
rule's own `if:`, caps) ends the sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from app.lifecycle.checks import IF_REASON, RULE_IF_REASONS, Purchase, SequenceFacts
from app.lifecycle.due import bought_after
from app.planner.planner import PlannedMessage, follow_up
from app.rules.model import Rule
from app.statuses import MessageStatus


def sequence_facts(
    rule: Rule,
    *,
    step: int,
    purchased: Sequence[Purchase] = (),
    purchases: Iterable[tuple[datetime, Purchase]] = (),
    previous_at: datetime | None = None,
    event_at: datetime | None = None,
    opened: bool = False,
    clicked: bool = False,
    answered: bool = False,
) -> SequenceFacts | None:
    """The facts step `step` of `rule` is decided on; None for a rule with neither `steps`
    nor `exit` (nothing to decide). `purchases`: the customer's other standing orders' items,
    each with its order's time; `previous_at`: when the previous step was sent (or due)."""
    spec = rule.step(step)
    condition = spec.if_ if spec is not None else None
    if condition is None and rule.exit is None:
        return None
    found = list(purchases)
    return SequenceFacts(
        step=step,
        condition=condition,
        exit=rule.exit,
        opened=opened,
        clicked=clicked,
        answered=answered,
        purchased=purchased,
        bought_since_previous=bought_after(previous_at, found) if step > 1 else [],
        bought_since_event=bought_after(event_at, found),
    )


def next_step(
    rule: Rule,
    *,
    step: int,
    dedupe_key: str,
    variant: str | None,
    event_at: datetime | None,
    send_at: datetime,
    status: str,
    reason: str | None,
    decided_at: datetime,
    tz: ZoneInfo,
) -> PlannedMessage | None:
    """The step after one decided (`status`, `reason` at `decided_at`; it was due at
    `send_at`), or None when the sequence ends there."""
    if not rule.steps:
        return None
    if status == MessageStatus.SENT:
        since, held_out = decided_at, False
    elif status == MessageStatus.HELD_OUT:
        since, held_out = send_at, True
    elif (
        status == MessageStatus.SKIPPED
        and reason is not None
        and reason.startswith(IF_REASON)
        and reason not in RULE_IF_REASONS
    ):
        since, held_out = send_at, False
    else:
        return None
    return follow_up(
        rule,
        step=step,
        dedupe_key=dedupe_key,
        variant=variant,
        event_at=event_at,
        since=since,
        tz=tz,
        held_out=held_out,
    )
