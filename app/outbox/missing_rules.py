"""SQL for messages whose rule is missing from the loaded rules: held (`paused`,
`rule_missing`) while it is away, scheduled again when it comes back, taken over by a rule
that says `renamed_from`, and cancelled (`rule_removed`) once RULE_GRACE has passed.

Every statement is set-based and idempotent: each worker may run them on every poll.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.lifecycle.checks import RULE_MISSING, RULE_REMOVED
from app.models import Message, MessageStatus

_MESSAGES = cast(Table, Message.__table__)
WAITING = (MessageStatus.SCHEDULED, MessageStatus.PAUSED)
# A renamed rule's message whose new dedupe key the new rule already holds (it planned the
# same message itself meanwhile): the one it holds is kept, so nothing goes out twice.
RULE_RENAMED = "rule_renamed"


def _rowcount(result: object) -> int:
    return int(result.rowcount)  # type: ignore[attr-defined]


async def pause_missing(session: AsyncSession, *, live: Collection[str], now: datetime) -> int:
    """Hold the scheduled messages of every rule not in `live`; their send time is kept."""
    result = await session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SCHEDULED, Message.rule_id.not_in(list(live)))
        .values(
            status=MessageStatus.PAUSED, status_reason=RULE_MISSING, paused_at=now, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def resume_returned(session: AsyncSession, *, live: Collection[str], now: datetime) -> int:
    """Schedule again the held messages of rules that are back, at their own send time
    (`next_attempt_at`, untouched while paused): one that passed is due at once."""
    if not live:
        return 0
    result = await session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.PAUSED,
            Message.status_reason == RULE_MISSING,
            Message.rule_id.in_(list(live)),
        )
        .values(status=MessageStatus.SCHEDULED, status_reason=None, paused_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def cancel_paused_before(session: AsyncSession, *, before: datetime, now: datetime) -> int:
    """Cancel what has waited for its rule since `before` (now - RULE_GRACE) or longer."""
    result = await session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.PAUSED,
            Message.status_reason == RULE_MISSING,
            Message.paused_at <= before,
        )
        .values(status=MessageStatus.CANCELLED, status_reason=RULE_REMOVED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


@dataclass(frozen=True)
class Takeover:
    moved: int = 0
    # Already planned by the new rule under the same key: cancelled, `rule_renamed`.
    duplicates: int = 0


async def take_over_renamed(
    session: AsyncSession, *, renames: Mapping[str, str], now: datetime
) -> Takeover:
    """Re-point the waiting messages of each old rule id to the rule that took its place.

    Dedupe keys begin with the rule id (`<rule>:order:…`, `<rule>:birthday:…`), so they are
    rewritten too: else the new rule would plan the same message again under its own key.
    A message whose new key is taken already is cancelled instead of moved."""
    moved = duplicates = 0
    for old, new in sorted(renames.items()):
        prefix = f"{old}:"
        # substr is 1-based: the key from just after "<old>:".
        new_key = literal(f"{new}:", String).concat(
            func.substr(_MESSAGES.c.dedupe_key, len(prefix) + 1)
        )
        other = _MESSAGES.alias("other")
        taken = exists(select(other.c.id).where(other.c.dedupe_key == new_key))
        ours = (
            _MESSAGES.c.rule_id == old,
            _MESSAGES.c.status.in_(WAITING),
            func.substr(_MESSAGES.c.dedupe_key, 1, len(prefix)) == prefix,
        )
        result = await session.execute(
            update(_MESSAGES)
            .where(*ours, taken)
            .values(
                status=MessageStatus.CANCELLED,
                status_reason=RULE_RENAMED,
                paused_at=None,
                updated_at=now,
            )
        )
        duplicates += _rowcount(result)
        result = await session.execute(
            update(_MESSAGES)
            .where(*ours)
            .values(
                rule_id=new,
                dedupe_key=new_key,
                status=MessageStatus.SCHEDULED,
                status_reason=None,
                paused_at=None,
                updated_at=now,
            )
        )
        moved += _rowcount(result)
        # A key not written by the planner (no "<old>:" prefix) moves as it is.
        result = await session.execute(
            update(_MESSAGES)
            .where(
                _MESSAGES.c.rule_id == old,
                _MESSAGES.c.status.in_(WAITING),
            )
            .values(
                rule_id=new,
                status=MessageStatus.SCHEDULED,
                status_reason=None,
                paused_at=None,
                updated_at=now,
            )
        )
        moved += _rowcount(result)
    return Takeover(moved=moved, duplicates=duplicates)


async def waiting_for_missing(session: AsyncSession) -> dict[str, int]:
    """How many messages each missing rule has waiting for it (held, `rule_missing`)."""
    rows = await session.execute(
        select(Message.rule_id, func.count())
        .where(Message.status == MessageStatus.PAUSED, Message.status_reason == RULE_MISSING)
        .group_by(Message.rule_id)
        .order_by(Message.rule_id)
    )
    return {rule_id: int(count) for rule_id, count in rows.all()}
