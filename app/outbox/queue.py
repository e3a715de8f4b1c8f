"""The queue as an operator sees it: what is due, what waits per day ahead, what is held.

Read-only and grouped in the database (a queue of millions is a few hundred rows here):
per rule, the messages due now and the oldest of them, those scheduled per UTC day ahead,
and the paused and failed ones per reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.models import Message, MessageStatus

DAYS_AHEAD = 14
# Failed messages stay failed: the page shows those that failed lately.
FAILED_SPAN = timedelta(days=30)


@dataclass(slots=True)
class RuleQueue:
    """One rule's waiting work (or every rule's, as the totals row)."""

    rule: str
    due: int = 0
    oldest_due_at: datetime | None = None
    sending: int = 0
    ahead: dict[date, int] = field(default_factory=dict)
    later: int = 0
    paused: int = 0
    failed: int = 0

    @property
    def scheduled(self) -> int:
        return self.due + sum(self.ahead.values()) + self.later


@dataclass(frozen=True, slots=True)
class Queue:
    now: datetime
    days: list[date]  # the days ahead the table has a column for, today first
    rules: list[RuleQueue]
    total: RuleQueue
    paused_reasons: list[tuple[str, int]]
    failed_reasons: list[tuple[str, int]]

    @property
    def oldest_due_age(self) -> float | None:
        """Seconds the longest-waiting due message has waited; None when none is due."""
        oldest = self.total.oldest_due_at
        return None if oldest is None else (self.now - oldest).total_seconds()


def _utc_day(column: Any, dialect: str) -> ColumnElement[Any]:
    # SQLite keeps naive UTC text (app/db.py); PostgreSQL a timestamptz shown in the session's zone.
    if dialect == "sqlite":
        return func.date(column)
    return func.date(func.timezone("UTC", column))


async def load_queue(session: AsyncSession, *, now: datetime, rule: str | None = None) -> Queue:
    dialect = session.get_bind().dialect.name
    today = now.date()
    days = [today + timedelta(days=offset) for offset in range(DAYS_AHEAD)]
    horizon = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), now.tzinfo)
    rules: dict[str, RuleQueue] = defaultdict(lambda: RuleQueue(rule=""))

    def of(name: str) -> RuleQueue:
        found = rules[name]
        found.rule = name
        return found

    def only_rule(statement: Any) -> Any:
        return statement if rule is None else statement.where(Message.rule_id == rule)

    scheduled = Message.status == MessageStatus.SCHEDULED
    due = only_rule(
        select(Message.rule_id, func.count(), func.min(Message.next_attempt_at))
        .where(scheduled, Message.next_attempt_at <= now)
        .group_by(Message.rule_id)
    )
    for name, count, oldest in (await session.execute(due)).all():
        of(name).due, of(name).oldest_due_at = count, oldest

    day = _utc_day(Message.next_attempt_at, dialect)
    ahead = only_rule(
        select(Message.rule_id, day, func.count())
        .where(scheduled, Message.next_attempt_at > now, Message.next_attempt_at < horizon)
        .group_by(Message.rule_id, day)
    )
    for name, when, count in (await session.execute(ahead)).all():
        of(name).ahead[date.fromisoformat(str(when))] = count
    later = only_rule(
        select(Message.rule_id, func.count())
        .where(scheduled, Message.next_attempt_at >= horizon)
        .group_by(Message.rule_id)
    )
    for name, count in (await session.execute(later)).all():
        of(name).later = count

    held = only_rule(
        select(Message.rule_id, Message.status, Message.status_reason, func.count())
        .where(
            (Message.status.in_([MessageStatus.SENDING, MessageStatus.PAUSED]))
            | ((Message.status == MessageStatus.FAILED) & (Message.updated_at >= now - FAILED_SPAN))
        )
        .group_by(Message.rule_id, Message.status, Message.status_reason)
    )
    paused: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    for name, status, reason, count in (await session.execute(held)).all():
        if status == MessageStatus.SENDING:
            of(name).sending += count
        elif status == MessageStatus.PAUSED:
            of(name).paused += count
            paused[reason or "unknown"] += count
        else:
            of(name).failed += count
            failed[reason or "unknown"] += count

    ordered = sorted(rules.values(), key=lambda row: row.rule)
    total = RuleQueue(rule="All rules")
    for row in ordered:
        total.due += row.due
        if row.oldest_due_at is not None and (
            total.oldest_due_at is None or row.oldest_due_at < total.oldest_due_at
        ):
            total.oldest_due_at = row.oldest_due_at
        total.sending += row.sending
        for when, count in row.ahead.items():
            total.ahead[when] = total.ahead.get(when, 0) + count
        total.later += row.later
        total.paused += row.paused
        total.failed += row.failed
    return Queue(
        now=now,
        days=days,
        rules=ordered,
        total=total,
        paused_reasons=sorted(paused.items(), key=lambda item: (-item[1], item[0])),
        failed_reasons=sorted(failed.items(), key=lambda item: (-item[1], item[0])),
    )


# The statuses of messages that were not sent, and will not be unless someone acts.
UNSENT = (
    MessageStatus.SKIPPED,
    MessageStatus.EXPIRED,
    MessageStatus.CANCELLED,
    MessageStatus.HELD_OUT,
    MessageStatus.PAUSED,
    MessageStatus.FAILED,
)


async def unsent_by_reason(
    session: AsyncSession, *, since: datetime, until: datetime, rule: str | None = None
) -> list[tuple[str, str, int]]:
    """(status, reason, count) of the messages due in [since, until) that were not sent,
    most first: the reasons the stats' counts of skipped, expired and the rest leave out.
    Read from the messages as they are now (not rolled up)."""
    statement = (
        select(Message.status, Message.status_reason, func.count())
        .where(Message.status.in_(UNSENT), Message.send_at >= since, Message.send_at < until)
        .group_by(Message.status, Message.status_reason)
    )
    if rule is not None:
        statement = statement.where(Message.rule_id == rule)
    rows = [
        (status, reason or "none", count)
        for status, reason, count in (await session.execute(statement)).all()
    ]
    order = {status: index for index, status in enumerate(UNSENT)}
    return sorted(rows, key=lambda row: (order[MessageStatus(row[0])], -row[2], row[1]))
