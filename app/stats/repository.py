"""All SQL of stats: conversions at intake, the rollup job's reads and writes, the API's reads.

Functions flush at most; the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, and_, bindparam, case, delete, func, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import (
    ConsentChange,
    ConsentChangeKind,
    Conversion,
    CouponCode,
    Customer,
    MailFeedbackEvent,
    Message,
    MessageKind,
    MessageStatus,
    StatsMessage,
    StatsRevenueTotals,
    StatsSeries,
    StatsTotals,
    StatsWatermark,
    Suppression,
    SuppressionReason,
    TrackingEvent,
)
from app.stats.attribution import Credit, HeldOutMessage, Redeemed, Touch, Via
from app.stats.tally import COUNTERS, PENDING_STATUSES, MessageFacts, MessageTally, SeriesKey

# Rows an IN (...) list may name at once: well below either database's parameter limit.
_CHUNK = 1000
# (series, day) conditions OR-ed in one statement.
_OR_TERMS = 200
LOCK = "lock"

# -- attribution, at order intake --------------------------------------------------------


# Run for every order a known customer places: built once, with bound parameters (building
# a statement costs more CPU than running it).
_LATEST_TOUCHES = (
    select(TrackingEvent.message_id, TrackingEvent.kind, func.max(TrackingEvent.occurred_at))
    .join(Message, Message.id == TrackingEvent.message_id)
    .where(
        Message.customer_id == bindparam("customer"),
        or_(Message.order_id.is_(None), Message.order_id != bindparam("order")),
        TrackingEvent.class_ == "human",
        TrackingEvent.kind.in_(bindparam("kinds", expanding=True)),
        TrackingEvent.occurred_at >= bindparam("since"),
        TrackingEvent.occurred_at <= bindparam("until"),
    )
    .group_by(TrackingEvent.message_id, TrackingEvent.kind)
)
_HELD_OUT = select(Message.id, Message.send_at).where(
    Message.customer_id == bindparam("customer"),
    Message.status == MessageStatus.HELD_OUT,
    or_(Message.order_id.is_(None), Message.order_id != bindparam("order")),
    Message.send_at >= bindparam("since"),
    Message.send_at <= bindparam("until"),
)


async def latest_touches(
    session: AsyncSession,
    *,
    customer_id: int,
    order_id: int,
    since: datetime,
    until: datetime,
    kinds: Collection[Via],
) -> list[Touch]:
    """The customer's latest human click (and open) on each message, within [since, until];
    messages planned for `order_id` itself are left out."""
    rows = await session.execute(
        _LATEST_TOUCHES,
        {
            "customer": customer_id,
            "order": order_id,
            "kinds": [kind.value for kind in kinds],
            "since": since,
            "until": until,
        },
    )
    return [
        Touch(message_id=message_id, via=Via.CLICK if kind == "click" else Via.OPEN, at=at)
        for message_id, kind, at in rows
    ]


async def held_out_messages(
    session: AsyncSession, *, customer_id: int, order_id: int, since: datetime, until: datetime
) -> list[HeldOutMessage]:
    rows = await session.execute(
        _HELD_OUT, {"customer": customer_id, "order": order_id, "since": since, "until": until}
    )
    return [HeldOutMessage(message_id=id_, send_at=send_at) for id_, send_at in rows]


async def coupon_redemptions(session: AsyncSession, *, order_id: int) -> list[Redeemed]:
    """The coupon codes of our mail that the order used (linked when it arrived)."""
    rows = await session.execute(
        select(CouponCode.message_id, CouponCode.assigned_at).where(
            CouponCode.redeemed_order_id == order_id,
            CouponCode.message_id.is_not(None),
            CouponCode.assigned_at.is_not(None),
        )
    )
    return [
        Redeemed(message_id=message_id, assigned_at=at)
        for message_id, at in rows
        if message_id is not None and at is not None  # the query's conditions; for mypy
    ]


async def has_conversion(session: AsyncSession, order_id: int) -> bool:
    found = await session.execute(select(Conversion.id).where(Conversion.order_id == order_id))
    return found.first() is not None


async def add_conversion(
    session: AsyncSession,
    *,
    order_id: int,
    credit: Credit,
    revenue: Decimal | None,
    currency: str | None,
    converted_at: datetime,
) -> bool:
    """Store the order's conversion; False when the order had one (a repeat is harmless)."""
    insert = dialect_insert(session)
    created = await session.execute(
        insert(Conversion)
        .values(
            order_id=order_id,
            message_id=credit.message_id,
            via=credit.via.value,
            revenue=revenue,
            currency=currency,
            converted_at=converted_at,
        )
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(Conversion.id)
    )
    return created.scalar_one_or_none() is not None


# -- the rollup job: lock and watermarks ---------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A source's watermark: every row up to `folded_id` is in the totals."""

    folded_id: int = 0
    candidate_id: int | None = None
    candidate_at: datetime | None = None


async def lock_rollup(session: AsyncSession, *, now: datetime) -> bool:
    """Take the rollup lock for this transaction; False when another worker holds it.

    The first statement writes, so on SQLite it takes the database's write lock (waiting
    for it) before reading anything; on PostgreSQL a busy lock row is skipped, not waited for.
    """
    insert = dialect_insert(session)
    await session.execute(
        insert(StatsWatermark)
        .values(source=LOCK, folded_id=0)
        .on_conflict_do_nothing(index_elements=["source"])
    )
    if session.get_bind().dialect.name == "postgresql":
        locked = await session.execute(
            select(StatsWatermark.source)
            .where(StatsWatermark.source == LOCK)
            .with_for_update(skip_locked=True)
        )
        if locked.first() is None:
            return False
    await session.execute(
        update(StatsWatermark).where(StatsWatermark.source == LOCK).values(updated_at=now)
    )
    return True


async def rolled_up_at(session: AsyncSession) -> datetime | None:
    """When the rollup job last ran."""
    found = await session.execute(
        select(StatsWatermark.updated_at).where(StatsWatermark.source == LOCK)
    )
    return found.scalar_one_or_none()


async def get_mark(session: AsyncSession, source: str) -> Mark:
    row = (
        await session.execute(
            select(
                StatsWatermark.folded_id, StatsWatermark.candidate_id, StatsWatermark.candidate_at
            ).where(StatsWatermark.source == source)
        )
    ).first()
    return Mark() if row is None else Mark(*row)


async def save_mark(session: AsyncSession, source: str, mark: Mark, *, now: datetime) -> None:
    values = {**dataclasses.asdict(mark), "updated_at": now}
    insert = dialect_insert(session)
    statement = insert(StatsWatermark).values(source=source, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=["source"], set_=values))


_SOURCE_IDS: dict[str, Any] = {
    "messages": Message.id,
    "tracking_events": TrackingEvent.id,
    "conversions": Conversion.id,
    "suppressions": Suppression.id,
    "consent_changes": ConsentChange.id,
    "mail_feedback_events": MailFeedbackEvent.id,
}


async def latest_id(session: AsyncSession, source: str) -> int:
    column = _SOURCE_IDS[source]
    return int((await session.execute(select(func.max(column)))).scalar_one() or 0)


# -- the rollup job: what to fold ----------------------------------------------------------

_FACTS = (
    Message.id,
    Message.rule_id,
    Message.variant,
    Message.template,
    Message.status,
    Message.status_reason,
    Message.send_at,
    Message.sent_at,
    Message.step,
)


async def messages_after(session: AsyncSession, *, after: int, limit: int) -> list[MessageFacts]:
    rows = await session.execute(
        select(*_FACTS).where(Message.id > after).order_by(Message.id).limit(limit)
    )
    return [MessageFacts(*row) for row in rows]


async def messages_by_id(session: AsyncSession, ids: Iterable[int]) -> list[MessageFacts]:
    found: list[MessageFacts] = []
    for chunk in _chunks(ids):
        rows = await session.execute(select(*_FACTS).where(Message.id.in_(chunk)))
        found.extend(MessageFacts(*row) for row in rows)
    return found


async def changed_pending(session: AsyncSession, *, limit: int) -> list[MessageFacts]:
    """Messages counted as waiting whose status has moved on since."""
    rows = await session.execute(
        select(*_FACTS)
        .join(StatsMessage, StatsMessage.message_id == Message.id)
        .where(StatsMessage.status.in_(PENDING_STATUSES), Message.status != StatsMessage.status)
        .order_by(Message.id)
        .limit(limit)
    )
    return [MessageFacts(*row) for row in rows]


@dataclass(frozen=True)
class EventRow:
    id: int
    message_id: int
    kind: str
    event_class: str


async def events_between(
    session: AsyncSession, *, after: int, up_to: int, limit: int
) -> list[EventRow]:
    rows = await session.execute(
        select(TrackingEvent.id, TrackingEvent.message_id, TrackingEvent.kind, TrackingEvent.class_)
        .where(TrackingEvent.id > after, TrackingEvent.id <= up_to)
        .order_by(TrackingEvent.id)
        .limit(limit)
    )
    return [EventRow(*row) for row in rows]


@dataclass(frozen=True)
class ConversionRow:
    id: int
    message_id: int
    via: str
    revenue: Decimal | None
    currency: str | None


async def conversions_between(
    session: AsyncSession, *, after: int, up_to: int, limit: int
) -> list[ConversionRow]:
    rows = await session.execute(
        select(
            Conversion.id,
            Conversion.message_id,
            Conversion.via,
            Conversion.revenue,
            Conversion.currency,
        )
        .where(Conversion.id > after, Conversion.id <= up_to)
        .order_by(Conversion.id)
        .limit(limit)
    )
    return [ConversionRow(*row) for row in rows]


@dataclass(frozen=True)
class FeedbackRow:
    id: int
    message_id: int | None
    kind: str


async def feedback_between(
    session: AsyncSession, *, after: int, up_to: int, limit: int
) -> list[FeedbackRow]:
    rows = await session.execute(
        select(MailFeedbackEvent.id, MailFeedbackEvent.message_id, MailFeedbackEvent.kind)
        .where(MailFeedbackEvent.id > after, MailFeedbackEvent.id <= up_to)
        .order_by(MailFeedbackEvent.id)
        .limit(limit)
    )
    return [FeedbackRow(*row) for row in rows]


@dataclass(frozen=True)
class UnsubscribeRow:
    id: int
    email: str
    at: datetime


async def unsubscribes_between(
    session: AsyncSession, *, after: int, up_to: int, limit: int
) -> tuple[list[UnsubscribeRow], int]:
    """The unsubscribes among suppressions (after, up_to], and the last id looked at."""
    rows = (
        await session.execute(
            select(Suppression.id, Suppression.email, Suppression.reason, Suppression.created_at)
            .where(Suppression.id > after, Suppression.id <= up_to)
            .order_by(Suppression.id)
            .limit(limit)
        )
    ).all()
    last = rows[-1][0] if len(rows) == limit else up_to
    found = [
        UnsubscribeRow(id_, email, at)
        for id_, email, reason, at in rows
        if reason in (SuppressionReason.UNSUBSCRIBE, SuppressionReason.UNSUBSCRIBE_ALL)
    ]
    return found, last


# Marketing turned off by the customer; not an operator's removal of an old entry.
_CUSTOMER_SOURCES = ("one-click", "page", "mailto")


async def marketing_unsubscribes_between(
    session: AsyncSession, *, after: int, up_to: int, limit: int
) -> tuple[list[UnsubscribeRow], int]:
    """The customers' marketing unsubscribes among consent changes (after, up_to], and the
    last id looked at."""
    rows = (
        await session.execute(
            select(
                ConsentChange.id,
                ConsentChange.email,
                ConsentChange.change,
                ConsentChange.source,
                ConsentChange.at,
            )
            .where(ConsentChange.id > after, ConsentChange.id <= up_to)
            .order_by(ConsentChange.id)
            .limit(limit)
        )
    ).all()
    last = rows[-1][0] if len(rows) == limit else up_to
    found = [
        UnsubscribeRow(id_, email, at)
        for id_, email, change, source, at in rows
        if email and change == ConsentChangeKind.MARKETING_OFF and source in _CUSTOMER_SOURCES
    ]
    return found, last


async def last_marketing_message_to(
    session: AsyncSession, *, email: str, before: datetime
) -> int | None:
    """The latest marketing message sent to the address before `before`: the one whose
    unsubscribe link (or header) was most likely used."""
    customers = select(Customer.id).where(Customer.email == email.lower())
    return (
        await session.execute(
            select(Message.id)
            .where(
                Message.customer_id.in_(customers),
                Message.kind == MessageKind.MARKETING,
                Message.status == MessageStatus.SENT,
                Message.sent_at <= before,
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


# -- the rollup job: message tallies, series and running totals ---------------------------

_TALLY_FIELDS = [field.name for field in dataclasses.fields(MessageTally)]


async def tallies(session: AsyncSession, ids: Iterable[int]) -> dict[int, MessageTally]:
    columns = [getattr(StatsMessage, name) for name in _TALLY_FIELDS]
    found: dict[int, MessageTally] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(select(*columns).where(StatsMessage.message_id.in_(chunk)))
        for row in rows:
            tally = MessageTally(*row)
            found[tally.message_id] = tally
    return found


async def insert_tallies(session: AsyncSession, new: Sequence[MessageTally]) -> None:
    if new:
        insert = dialect_insert(session)
        await session.execute(insert(StatsMessage), [_tally_row(t) for t in new])


async def update_tallies(session: AsyncSession, changed: Sequence[MessageTally]) -> None:
    await _update_many(session, StatsMessage, ("message_id",), [_tally_row(t) for t in changed])


def _tally_row(tally: MessageTally) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies every value, and this runs per message.
    return {name: getattr(tally, name) for name in _TALLY_FIELDS}


async def _update_many(
    session: AsyncSession, model: Any, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """UPDATE rows by primary key: one statement, many parameter sets."""
    if not rows:
        return
    table = model.__table__
    statement = (
        update(table)
        .where(*(table.c[key] == bindparam(f"key_{key}") for key in keys))
        .values({name: bindparam(name) for name in rows[0] if name not in keys})
    )
    await session.execute(
        statement, [row | {f"key_{key}": row[key] for key in keys} for row in rows]
    )


async def series_id(session: AsyncSession, key: SeriesKey) -> int:
    """The series' id, made on first use."""
    values = dataclasses.asdict(key)
    insert = dialect_insert(session)
    await session.execute(
        insert(StatsSeries)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["rule_id", "variant", "template", "step", "currency"]
        )
    )
    return int(
        (
            await session.execute(
                select(StatsSeries.id).where(
                    *(getattr(StatsSeries, name) == value for name, value in values.items())
                )
            )
        ).scalar_one()
    )


async def series_keys(
    session: AsyncSession, *, ids: Iterable[int] | None = None, rule_id: str | None = None
) -> dict[int, SeriesKey]:
    """Series (of counts and of revenue) by id: the ones named, or a rule's, or all."""
    statement = select(
        StatsSeries.id,
        StatsSeries.rule_id,
        StatsSeries.variant,
        StatsSeries.template,
        StatsSeries.currency,
        StatsSeries.step,
    )
    if ids is not None:
        found: dict[int, SeriesKey] = {}
        for chunk in _chunks(ids):
            rows = await session.execute(statement.where(StatsSeries.id.in_(chunk)))
            found.update((row[0], SeriesKey(*row[1:])) for row in rows)
        return found
    if rule_id is not None:
        statement = statement.where(StatsSeries.rule_id == rule_id)
    return {row[0]: SeriesKey(*row[1:]) for row in await session.execute(statement)}


@dataclass(frozen=True)
class Ledger:
    """A table of running totals: per series, one row for each day on which something
    changed, holding the totals up to and including that day."""

    table: type[StatsTotals] | type[StatsRevenueTotals]
    columns: tuple[str, ...]

    @property
    def zero(self) -> Vector:
        return (0,) * len(self.columns)

    def value_columns(self) -> list[Any]:
        return [getattr(self.table, name) for name in self.columns]


Vector = tuple[Any, ...]
COUNTS = Ledger(StatsTotals, COUNTERS)
REVENUE = Ledger(StatsRevenueTotals, ("revenue",))


async def add_running(
    session: AsyncSession, ledger: Ledger, changes: Mapping[tuple[int, date], Vector]
) -> None:
    """Add each (series, day) change to that day's totals and every later day's.

    A day without a row gets one, starting from the latest row before it. A few statements
    for the whole batch: the rows from each series' first changed day on, the totals before
    it, then one INSERT and one UPDATE with many rows each. The rollup lock makes the read,
    add and write safe.
    """
    days_changed: defaultdict[int, set[date]] = defaultdict(set)
    for series, day in changes:
        days_changed[series].add(day)
    first = {series: min(days) for series, days in days_changed.items()}
    later = await _rows_from(session, ledger, first)
    missing = {
        series: day - timedelta(days=1)
        for series, day in first.items()
        if not later[series] or later[series][0][0] != day
    }
    before = await running_on(session, ledger, missing)
    inserts, updates = [], []
    for series, changed in days_changed.items():
        rows = dict(later[series])
        added, latest = ledger.zero, before.get(series, ledger.zero)
        for day in sorted(rows.keys() | changed):
            if day in changed:
                added = tuple(a + c for a, c in zip(added, changes[(series, day)], strict=True))
            row = {"series_id": series, "day": day}
            if day in rows:
                latest = rows[day]
                if any(added):
                    updates.append(row | _named(ledger, latest, added))
            else:
                inserts.append(row | _named(ledger, latest, added))
    if inserts:
        await session.execute(dialect_insert(session)(ledger.table), inserts)
    await _update_many(session, ledger.table, ("series_id", "day"), updates)


def _named(ledger: Ledger, values: Vector, added: Vector) -> dict[str, Any]:
    return {name: v + a for name, v, a in zip(ledger.columns, values, added, strict=True)}


async def _rows_from(
    session: AsyncSession, ledger: Ledger, first: Mapping[int, date]
) -> defaultdict[int, list[tuple[date, Vector]]]:
    """Each series' rows from its day on, in day order."""
    table = ledger.table
    found: defaultdict[int, list[tuple[date, Vector]]] = defaultdict(list)
    pairs = sorted(first.items())
    for start in range(0, len(pairs), _OR_TERMS):
        chunk = pairs[start : start + _OR_TERMS]
        rows = await session.execute(
            select(table.series_id, table.day, *ledger.value_columns())
            .where(or_(*(and_(table.series_id == s, table.day >= d) for s, d in chunk)))
            .order_by(table.series_id, table.day)
        )
        for row in rows:
            found[row[0]].append((row[1], tuple(row[2:])))
    return found


# -- retention -----------------------------------------------------------------------------


async def purge_events(
    session: AsyncSession, *, before: datetime, folded_up_to: int, limit: int
) -> int:
    """Delete up to `limit` raw events older than `before` that are already folded."""
    # Walks the primary key from the oldest: old events have the lowest ids.
    doomed = (
        select(TrackingEvent.id)
        .where(TrackingEvent.id <= folded_up_to, TrackingEvent.occurred_at < before)
        .order_by(TrackingEvent.id)
        .limit(limit)
    )
    ids = list((await session.execute(doomed)).scalars())
    if ids:
        await session.execute(
            delete(TrackingEvent)
            .where(TrackingEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


# -- running totals as of a day, and over a span ------------------------------------------


async def running_on(
    session: AsyncSession, ledger: Ledger, days: Mapping[int, date]
) -> dict[int, Vector]:
    """Each series' totals on its day: its latest row on or before it (none: no row yet)."""
    table = ledger.table
    earlier = table.__table__.alias("earlier")
    found: dict[int, Vector] = {}
    pairs = sorted(days.items())
    for start in range(0, len(pairs), _CHUNK):
        chunk = dict(pairs[start : start + _CHUNK])
        distinct = set(chunk.values())
        bound: Any = (
            distinct.pop()
            if len(distinct) == 1
            else type_coerce(case(chunk, value=StatsSeries.id), Date)
        )
        # One index seek per series (PRIMARY KEY (series_id, day)), however long the span
        # and however many days have rows: this keeps stats fast at any volume.
        latest_day = (
            select(earlier.c.day)
            .where(earlier.c.series_id == StatsSeries.id, earlier.c.day <= bound)
            .order_by(earlier.c.day.desc())
            .limit(1)
            .correlate(StatsSeries)
            .scalar_subquery()
        )
        picks = (
            select(StatsSeries.id.label("series_id"), latest_day.label("day"))
            .where(StatsSeries.id.in_(list(chunk)))
            .cte("picks")
        )
        rows = await session.execute(
            select(table.series_id, *ledger.value_columns()).join(
                picks, and_(table.series_id == picks.c.series_id, table.day == picks.c.day)
            )
        )
        found.update((row[0], tuple(row[1:])) for row in rows)
    return found


async def running_rows(
    session: AsyncSession, ledger: Ledger, *, series_ids: Collection[int], first: date, last: date
) -> list[tuple[int, date, Vector]]:
    """The series' rows from `first` to `last`, in day order."""
    table = ledger.table
    found: list[tuple[int, date, Vector]] = []
    for chunk in _chunks(series_ids):
        rows = await session.execute(
            select(table.series_id, table.day, *ledger.value_columns()).where(
                table.series_id.in_(chunk), table.day >= first, table.day <= last
            )
        )
        found.extend((row[0], row[1], tuple(row[2:])) for row in rows)
    return sorted(found, key=lambda row: row[1])


async def message_tally(
    session: AsyncSession, message_id: int
) -> tuple[MessageTally, SeriesKey] | None:
    found = await tallies(session, [message_id])
    tally = found.get(message_id)
    if tally is None:
        return None
    keys = await series_keys(session, ids=[tally.series_id])
    return tally, keys[tally.series_id]


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    every = sorted(set(ids))
    for start in range(0, len(every), _CHUNK):
        yield every[start : start + _CHUNK]
