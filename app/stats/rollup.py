"""The rollup job: fold what changed since its last run into the stats' running totals.

Five sources, each read from a watermark: new messages and the ones whose status moved on,
tracking events, conversions, unsubscribes, and bounces and complaints reported after sending
(mail_feedback_events). Each message's own counts live in
stats_messages, so folding compares and moves them: a repeat changes nothing. Runs are
serialized by a lock row (a row lock on PostgreSQL, the write lock on SQLite), so any number
of workers can run the job; one that finds the lock taken leaves the run to its holder.

Ids are handed out in insert order but committed in any order, so an id is folded only once
it was the newest at least `settle` ago: every transaction that took a lower id has finished
by then (tracking requests take milliseconds). `settle` is also longer than a click burst, so
scanner clicks that are reclassified afterwards are folded as the machine clicks they are.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import transaction
from app.runtime import Runtime
from app.stats import repository
from app.stats.attribution import Via
from app.stats.repository import Mark
from app.stats.tally import (
    COUNTERS,
    MessageFacts,
    MessageTally,
    SeriesKey,
    contribution,
    event_total,
)

log = logging.getLogger(__name__)

# Rows folded per transaction: short transactions, bounded memory.
BATCH = 5000
MIN_SETTLE = timedelta(seconds=60)
PURGE_BATCH = 10_000


def settle_time(settings: Settings) -> timedelta:
    """How old an id must be to be folded: a minute, and always longer than a click burst."""
    return max(MIN_SETTLE, timedelta(seconds=2 * settings.tracking_burst_seconds))


def settled_up_to(mark: Mark, *, now: datetime, settle: timedelta, latest_id: int) -> int:
    """The highest id it is safe to fold now: every lower id has been committed."""
    if settle <= timedelta(0):
        return latest_id
    if mark.candidate_at is not None and mark.candidate_at <= now - settle:
        return max(mark.folded_id, mark.candidate_id or 0)
    return mark.folded_id


def next_candidate(mark: Mark, *, now: datetime, settle: timedelta, latest_id: int) -> Mark:
    """Start timing the newest id once the previous candidate has settled (or there is none)."""
    if mark.candidate_at is None or mark.candidate_at <= now - settle:
        return replace(mark, candidate_id=latest_id, candidate_at=now)
    return mark


@dataclass
class FoldReport:
    messages: int = 0
    events: int = 0
    conversions: int = 0
    unsubscribes: int = 0
    feedback: int = 0
    # Another worker held the lock: it folds what this run would have.
    skipped: bool = False


class _Fold:
    """One transaction's worth of folding: message tallies loaded, changed, written back,
    and the changes to the running totals they add up to."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.totals: defaultdict[tuple[int, date], Counter[str]] = defaultdict(Counter)
        self.revenue: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)
        self._series: dict[SeriesKey, int] = {}
        self._keys: dict[int, SeriesKey] = {}
        self._tallies: dict[int, MessageTally] = {}
        self._new: set[int] = set()
        self._changed: set[int] = set()

    async def series_id(self, key: SeriesKey) -> int:
        await self._load_series()
        if key not in self._series:
            found = await repository.series_id(self.session, key)
            self._series[key], self._keys[found] = found, key
        return self._series[key]

    async def series_key(self, series_id: int) -> SeriesKey:
        await self._load_series()
        return self._keys[series_id]

    async def _load_series(self) -> None:
        if not self._keys:  # a few hundred rows: one read instead of one per message
            self._keys = await repository.series_keys(self.session)
            self._series = {key: id_ for id_, key in self._keys.items()}

    async def load(self, ids: Iterable[int]) -> dict[int, MessageTally]:
        """The tallies of these messages, counting the ones not counted yet. A message that
        no longer exists has none."""
        wanted = set(ids)
        missing = wanted - self._tallies.keys()
        self._tallies.update(await repository.tallies(self.session, missing))
        await self.refresh(
            await repository.messages_by_id(self.session, wanted - self._tallies.keys())
        )
        return {id_: self._tallies[id_] for id_ in wanted if id_ in self._tallies}

    async def refresh(self, messages: Sequence[MessageFacts]) -> None:
        """Count each message where it belongs now: its series, day, status and bounce."""
        known = await repository.tallies(
            self.session, [m.id for m in messages if m.id not in self._tallies]
        )
        self._tallies.update(known)
        for message in messages:
            series = await self.series_id(message.series)
            tally = self._tallies.get(message.id)
            if tally is None:
                tally = MessageTally(message.id, series, message.day, message.status)
                tally.bounced = message.bounced
                self._tallies[message.id] = tally
                self._new.add(message.id)
                self._count(tally, 1)
                continue
            place = (series, message.day, message.status, message.bounced)
            if place != (tally.series_id, tally.day, tally.status, tally.bounced):
                self.change(tally, _placed(*place))

    def change(self, tally: MessageTally, edit: Callable[[MessageTally], None]) -> None:
        """Edit a tally, and move what it counts: out of where it was, into where it is."""
        self._count(tally, -1)
        edit(tally)
        self._count(tally, 1)
        if tally.message_id not in self._new:
            self._changed.add(tally.message_id)

    def _count(self, tally: MessageTally, sign: int) -> None:
        cell = self.totals[(tally.series_id, tally.day)]
        for name, value in contribution(tally).items():
            cell[name] += sign * value

    async def write(self) -> None:
        await repository.insert_tallies(self.session, [self._tallies[i] for i in sorted(self._new)])
        await repository.update_tallies(
            self.session, [self._tallies[i] for i in sorted(self._changed)]
        )
        counts = {
            cell: tuple(deltas[name] for name in COUNTERS)
            for cell, deltas in self.totals.items()
            if any(deltas.values())
        }
        revenue = {cell: (amount,) for cell, amount in self.revenue.items() if amount}
        await repository.add_running(self.session, repository.COUNTS, counts)
        await repository.add_running(self.session, repository.REVENUE, revenue)


def _placed(series: int, day: date, status: str, bounced: bool) -> Callable[[MessageTally], None]:
    def edit(tally: MessageTally) -> None:
        tally.series_id, tally.day, tally.status, tally.bounced = series, day, status, bounced

    return edit


def _add(field: str, number: int) -> Callable[[MessageTally], None]:
    def edit(tally: MessageTally) -> None:
        setattr(tally, field, getattr(tally, field) + number)

    return edit


def _unsubscribed(tally: MessageTally) -> None:
    tally.unsubscribed = True


# -- one batch of each source; each returns (rows folded, the id folded up to) --------------

FoldBatch = Callable[[_Fold, int, int, int], Awaitable[tuple[int, int]]]


async def _fold_events(fold: _Fold, after: int, up_to: int, limit: int) -> tuple[int, int]:
    rows = await repository.events_between(fold.session, after=after, up_to=up_to, limit=limit)
    per_message: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for row in rows:
        per_message[row.message_id][event_total(row.kind, row.event_class)] += 1
    tallies = await fold.load(per_message)
    for message_id, totals in per_message.items():
        tally = tallies.get(message_id)
        if tally is None:
            continue  # deleted with its customer: its events went with it
        fold.change(tally, _add_all(totals))
    return len(rows), rows[-1].id if len(rows) == limit else up_to


def _add_all(totals: Counter[str]) -> Callable[[MessageTally], None]:
    def edit(tally: MessageTally) -> None:
        for field, number in totals.items():
            _add(field, number)(tally)

    return edit


async def _fold_conversions(fold: _Fold, after: int, up_to: int, limit: int) -> tuple[int, int]:
    rows = await repository.conversions_between(fold.session, after=after, up_to=up_to, limit=limit)
    tallies = await fold.load(row.message_id for row in rows)
    for row in rows:
        tally = tallies.get(row.message_id)
        if tally is None:
            continue
        fold.change(tally, _add("conversions", 1))
        if row.via != Via.HOLDOUT and row.currency and row.revenue is not None:
            key = replace(await fold.series_key(tally.series_id), currency=row.currency)
            fold.revenue[(await fold.series_id(key), tally.day)] += row.revenue
    return len(rows), rows[-1].id if len(rows) == limit else up_to


async def _fold_unsubscribes(fold: _Fold, after: int, up_to: int, limit: int) -> tuple[int, int]:
    rows, last = await repository.unsubscribes_between(
        fold.session, after=after, up_to=up_to, limit=limit
    )
    return await _credit_unsubscribes(fold, rows, last)


async def _fold_marketing_unsubscribes(
    fold: _Fold, after: int, up_to: int, limit: int
) -> tuple[int, int]:
    rows, last = await repository.marketing_unsubscribes_between(
        fold.session, after=after, up_to=up_to, limit=limit
    )
    return await _credit_unsubscribes(fold, rows, last)


async def _credit_unsubscribes(
    fold: _Fold, rows: list[repository.UnsubscribeRow], last: int
) -> tuple[int, int]:
    """Each unsubscribe counts once, for the last marketing message sent before it."""
    for row in rows:
        message_id = await repository.last_marketing_message_to(
            fold.session, email=row.email, before=row.at
        )
        if message_id is None:
            continue  # nothing of ours was sent to the address before
        tally = (await fold.load([message_id])).get(message_id)
        if tally is not None and not tally.unsubscribed:
            fold.change(tally, _unsubscribed)
    return len(rows), last


# A feedback event's kind -> the flag it sets on its message's tally.
_FEEDBACK_FLAGS = {
    "hard_bounce": "bounced_async",
    "soft_bounce": "soft_bounced",
    "complaint": "complained",
}


async def _fold_feedback(fold: _Fold, after: int, up_to: int, limit: int) -> tuple[int, int]:
    rows = await repository.feedback_between(fold.session, after=after, up_to=up_to, limit=limit)
    tallies = await fold.load(row.message_id for row in rows if row.message_id is not None)
    for row in rows:
        flag = _FEEDBACK_FLAGS.get(row.kind)
        tally = tallies.get(row.message_id) if row.message_id is not None else None
        if flag is None or tally is None or getattr(tally, flag):
            continue  # about no message of ours, or counted already (a message counts once)
        fold.change(tally, _flag(flag))
    return len(rows), rows[-1].id if len(rows) == limit else up_to


def _flag(name: str) -> Callable[[MessageTally], None]:
    def edit(tally: MessageTally) -> None:
        setattr(tally, name, True)

    return edit


_EXACTLY_ONCE: dict[str, FoldBatch] = {
    "tracking_events": _fold_events,
    "conversions": _fold_conversions,
    "suppressions": _fold_unsubscribes,
    "consent_changes": _fold_marketing_unsubscribes,
    "mail_feedback_events": _fold_feedback,
}


# -- the job -------------------------------------------------------------------------------


async def fold_stats(
    runtime: Runtime, *, settle: timedelta | None = None, batch: int = BATCH
) -> FoldReport:
    """Bring the running totals up to date. Safe to run any number of times, anywhere.

    `settle=timedelta(0)` folds every committed row at once (tests and benchmarks, where
    nothing else writes meanwhile).
    """
    settle = settle_time(runtime.settings) if settle is None else settle
    report = FoldReport()
    cursor: int | None = None
    while True:  # new messages: idempotent, so read up to the newest every time
        async with transaction(runtime.session_factory) as session:
            now = runtime.clock.now()
            if not await repository.lock_rollup(session, now=now):
                return replace(report, skipped=True)
            cursor, done = await _fold_new_messages(
                session, cursor, now=now, settle=settle, batch=batch, report=report
            )
        if done:
            break
    while True:
        async with transaction(runtime.session_factory) as session:
            if not await repository.lock_rollup(session, now=runtime.clock.now()):
                return replace(report, skipped=True)
            fold = _Fold(session)
            moved = await repository.changed_pending(session, limit=batch)
            await fold.refresh(moved)
            await fold.write()
        report.messages += len(moved)
        if len(moved) < batch:
            break
    for source, fold_batch in _EXACTLY_ONCE.items():
        while True:
            async with transaction(runtime.session_factory) as session:
                now = runtime.clock.now()
                if not await repository.lock_rollup(session, now=now):
                    return replace(report, skipped=True)
                folded, done = await _fold_source(
                    session, source, fold_batch, now=now, settle=settle, batch=batch
                )
            setattr(report, _REPORTED[source], getattr(report, _REPORTED[source]) + folded)
            if done:
                break
    if (
        report.messages
        or report.events
        or report.conversions
        or report.unsubscribes
        or report.feedback
    ):
        log.info(
            "stats folded",
            extra={
                "messages": report.messages,
                "events": report.events,
                "conversions": report.conversions,
                "unsubscribes": report.unsubscribes,
                "feedback": report.feedback,
            },
        )
    return report


_REPORTED = {
    "tracking_events": "events",
    "conversions": "conversions",
    "suppressions": "unsubscribes",
    "consent_changes": "unsubscribes",
    "mail_feedback_events": "feedback",
}


async def _fold_new_messages(
    session: AsyncSession,
    cursor: int | None,
    *,
    now: datetime,
    settle: timedelta,
    batch: int,
    report: FoldReport,
) -> tuple[int, bool]:
    """One batch of the messages after the watermark; the watermark moves when all are read."""
    mark = await repository.get_mark(session, "messages")
    start = mark.folded_id if cursor is None else cursor
    latest = await repository.latest_id(session, "messages")
    fold = _Fold(session)
    messages = await repository.messages_after(session, after=start, limit=batch)
    await fold.refresh(messages)
    await fold.write()
    report.messages += len(messages)
    if len(messages) == batch:
        return messages[-1].id, False
    # Every message committed up to `latest` has now been read, so every settled one counts.
    settled = min(settled_up_to(mark, now=now, settle=settle, latest_id=latest), latest)
    mark = replace(mark, folded_id=max(mark.folded_id, settled))
    mark = next_candidate(mark, now=now, settle=settle, latest_id=latest)
    await repository.save_mark(session, "messages", mark, now=now)
    return latest, True


async def _fold_source(
    session: AsyncSession,
    source: str,
    fold_batch: FoldBatch,
    *,
    now: datetime,
    settle: timedelta,
    batch: int,
) -> tuple[int, bool]:
    """One batch of a source read exactly once: its rows and its watermark move together."""
    mark = await repository.get_mark(session, source)
    latest = await repository.latest_id(session, source)
    high = settled_up_to(mark, now=now, settle=settle, latest_id=latest)
    folded = 0
    if mark.folded_id < high:
        fold = _Fold(session)
        folded, last = await fold_batch(fold, mark.folded_id, high, batch)
        await fold.write()
        mark = replace(mark, folded_id=last)
        if last < high:
            await repository.save_mark(session, source, mark, now=now)
            return folded, False
    mark = next_candidate(mark, now=now, settle=settle, latest_id=latest)
    await repository.save_mark(session, source, mark, now=now)
    return folded, True


async def purge_tracking_events(runtime: Runtime, *, batch: int = PURGE_BATCH) -> int:
    """Delete raw opens and clicks older than TRACKING_RETENTION_DAYS; their counts stay in
    the running totals. Only events already folded are deleted."""
    before = runtime.clock.now() - timedelta(days=runtime.settings.tracking_retention_days)
    purged = 0
    while True:
        async with transaction(runtime.session_factory) as session:
            mark = await repository.get_mark(session, "tracking_events")
            deleted = await repository.purge_events(
                session, before=before, folded_up_to=mark.folded_id, limit=batch
            )
        purged += deleted
        if deleted < batch:
            break
    if purged:
        log.info("purged %d tracking events older than %s", purged, before.date())
    return purged
