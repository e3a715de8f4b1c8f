"""Replay webhook bodies in time order through the lifecycle, on the memory store.

The events go through the very flows the service runs (app/lifecycle/flows.py), on
app/lifecycle/memory.py instead of SQL; the events' own times are the clock. Before an event
at time T is applied, every message due by T is decided as the dispatcher decides it
(app/lifecycle/due.py), where a deferral puts the message back in the heap at its new time.
The worker's jobs (anchors, birthdays, lapses) run when what they read changes, and birthdays
and lapses again ahead of each one. What is simulate's own: this clock, and the report of what
became of each message.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.catalog.memory import MemoryCatalog
from app.events import Envelope, ItemIn, OrderClosed, OrderPlaced
from app.lifecycle import flows
from app.lifecycle.due import Send, Stop, decide_due
from app.lifecycle.memory import (
    PLANNED,
    Customer,
    MemoryStore,
    Outcome,
    Pending,
    as_utc,
    run_sync,
    standing_orders,
)
from app.planner.customers import LAPSED, plan_lapses
from app.planner.dates import plan_birthdays
from app.planner.limits import Defer
from app.rules.facts import ProductFacts
from app.rules.loader import RuleSet
from app.simulate.engagement import Engagement, ReviewLine
from app.simulate.recommend import Recommendations

__all__ = ["PLANNED", "STATUSES", "Outcome", "SimulationResult", "simulate"]

STATUSES = (PLANNED, "skipped", "cancelled", "expired", "held_out")
# --until defaults to this long after the last event, so late reminders still show.
DEFAULT_TAIL = timedelta(days=365)
# As app/jobs/birthdays.HORIZON: a birthday is planned this long before it is sent.
BIRTHDAY_HORIZON = timedelta(days=30)
# How far a birthday round looks past the horizon to find when the next one is needed.
_BIRTHDAY_LOOKAHEAD = timedelta(days=400)
# As app/jobs/lapses.HORIZON: a lapse message is planned this long before it is sent.
LAPSE_HORIZON = timedelta(days=7)
# Looks far enough for any lapse (a usual interval of years is still an interval).
_LAPSE_LOOKAHEAD = timedelta(days=100 * 366)
# Job runs go before messages due at the same instant (priorities are 0..100).
_JOB_RANK = -101
_PROGRESS_EVERY = 512
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SimulationResult:
    start: datetime
    until: datetime
    # Listed messages (send_at within [start, until]) in `listing_order`.
    outcomes: list[Outcome]
    # Rule id -> status -> count, over the listed messages.
    totals: dict[str, dict[str, int]]
    # Planned to go after `until`: not decided, not listed.
    beyond_until: int
    events: int
    duplicate_events: int
    # (rule id, step) -> status -> count, and (rule id, step, status, reason) -> count, over
    # the listed messages.
    step_totals: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    reasons: dict[tuple[str, int, str, str], int] = field(default_factory=dict)
    # Engagement lines (opened, clicked, reviews) about no message sent before them: ignored.
    unmatched_engagement: int = 0


# How long a review's follow-ups are held when no setting is given: TRACKING_BURST_SECONDS'
# default, the window in which a scanner clicking other stars is still told apart
# (app/reviews/endpoints.py); `aftersale simulate` passes the setting itself.
REVIEW_HOLD = timedelta(seconds=3)


@dataclass(frozen=True)
class _JobRun:
    """A worker job reaching one customer: the anchor job once after a change, the birthday
    job after a change and then ahead of each birthday, the lapse job after each order placed
    or closed and then ahead of the lapse (`round` voids older runs)."""

    job: str  # "anchors", "birthdays" or "lapses"
    customer: Customer
    round: int


def simulate(
    events: Iterable[Envelope],
    *,
    rules: RuleSet,
    start: datetime | None = None,
    until: datetime | None = None,
    default_time_zone: str = "UTC",
    progress: Callable[[int, int], None] | None = None,
    recommendations: Recommendations | None = None,
    catalog: MemoryCatalog | None = None,
    engagement: Iterable[Engagement | ReviewLine] = (),
    review_hold: timedelta = REVIEW_HOLD,
) -> SimulationResult:
    """Replay `events` (sorted by `occurred_at`, file order kept for ties) and decide every
    message due up to `until` (default: a year after the last event). Events before `start`
    (default: the first event) are replayed too; their messages are not listed.
    `recommendations` (a catalog) picks the products of rules with `recommend`; `engagement`
    says who opened or clicked what, and who reviewed what (else nobody did)."""
    timeline: list[Envelope | Engagement | ReviewLine] = [*events, *engagement]
    ordered = sorted(timeline, key=lambda event: event.occurred_at)
    if ordered:
        first, last = as_utc(ordered[0].occurred_at), as_utc(ordered[-1].occurred_at)
    else:
        first = last = as_utc(start or until or datetime(1970, 1, 1, tzinfo=UTC))
    start = as_utc(start) if start else first
    until = as_utc(until) if until else last + DEFAULT_TAIL
    replay = _Replay(
        rules=rules,
        until=until,
        default_time_zone=default_time_zone,
        recommendations=recommendations,
        catalog=catalog,
        review_hold=review_hold,
    )
    replay.run(ordered, progress=progress)
    return replay.result(start)


@dataclass
class _Replay:
    rules: RuleSet
    until: datetime
    default_time_zone: str
    recommendations: Recommendations | None = None
    # Products items are resolved to (`--catalog`); without it, items say what they are.
    catalog: MemoryCatalog | None = None
    review_hold: timedelta = REVIEW_HOLD
    store: MemoryStore = field(init=False)
    clock: datetime = _NEVER
    event_ids: set[str] = field(default_factory=set)
    events: int = 0
    duplicates: int = 0
    unmatched_engagement: int = 0

    def __post_init__(self) -> None:
        self.store = MemoryStore(
            rules=self.rules,
            default_time_zone=self.default_time_zone,
            catalog=self._products if self.catalog is not None else None,
            customer_changed=self._customer_changed,
            items_stored=self.recommendations.record if self.recommendations else None,
        )
        self._birthdays = bool(self.rules.for_event("birthday"))
        self._lapses = bool(self.rules.for_event(LAPSED))

    def _products(self, items: Sequence[ItemIn]) -> list[ProductFacts | None]:
        assert self.catalog is not None
        found = self.catalog.find([(item.product_id, item.variant_id, item.sku) for item in items])
        return [match.product.facts() if match else None for match in found]

    # -- the loop -----------------------------------------------------------------------------

    def run(
        self,
        ordered: Sequence[Envelope | Engagement | ReviewLine],
        *,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        for number, event in enumerate(ordered, 1):
            at = as_utc(event.occurred_at)
            if at > self.until:
                break
            self._drain(at)
            self.clock = at
            if isinstance(event, Engagement):
                matched = self.store.engage(
                    event.kind, at=at, about=event.about, rule_id=event.rule, step=event.step
                )
                if not matched:
                    self.unmatched_engagement += 1
                continue
            if isinstance(event, ReviewLine):
                self._review(event, at)
                continue
            self.events += 1
            if event.id in self.event_ids:
                self.duplicates += 1  # the webhook answers "duplicate" and does nothing
            else:
                self.event_ids.add(event.id)
                run_sync(flows.apply_event(self.store, event, rules=self.rules, now=at))
                if self._lapses and isinstance(event, OrderPlaced | OrderClosed):
                    self._orders_changed(event.order.id, at)
            if progress is not None and number % _PROGRESS_EVERY == 0:
                progress(number, len(ordered))
        if progress is not None:
            progress(len(ordered), len(ordered))  # what is left: messages due after the last
        self._drain(self.until)

    def _review(self, line: ReviewLine, at: datetime) -> None:
        """A person's stars: the review.answered rules plan as the review page makes them."""
        found = self.store.reviewed(at=at, order_id=line.order.id, rule_id=line.rule, sku=line.sku)
        if found is None:
            self.unmatched_engagement += 1
            return
        review_id, order = found
        assert order.customer is not None  # `reviewed` finds only orders of a customer
        answer = flows.ReviewAnswered(
            review_id=review_id,
            customer_id=order.customer.id,
            order_id=order.id,
            stars=line.stars,
            answered_at=at,
        )
        run_sync(flows.review_answered(self.store, answer, rules=self.rules, hold=self.review_hold))

    def _drain(self, up_to: datetime) -> None:
        heap = self.store.heap
        while heap and heap[0][0] <= up_to:
            due, _, _, entry = heapq.heappop(heap)
            # Planned late (a webhook after the send time): goes when seen, as live.
            now = self.clock = max(due, self.clock)
            if isinstance(entry, Pending):
                if self.store.is_waiting(entry):  # else cancelled meanwhile
                    self._decide(entry, now)
            elif isinstance(entry, _JobRun):
                if entry.job == "anchors":
                    run_sync(
                        flows.replan_anchors(
                            self.store, entry.customer.id, rules=self.rules, now=now
                        )
                    )
                elif entry.job == "lapses":
                    if entry.round == entry.customer.lapse_round:
                        self._lapse_round(entry.customer, now)
                elif entry.round == entry.customer.birthday_round:
                    self._birthday_round(entry.customer, now)

    def _push(self, at: datetime, entry: _JobRun) -> None:
        self.store.seq += 1
        heapq.heappush(self.store.heap, (at, _JOB_RANK, self.store.seq, entry))

    # -- the worker's jobs (app/jobs/) ---------------------------------------------------------

    def _customer_changed(self, customer: Customer, applied: bool, changed: bool) -> None:
        """The worker's jobs see a change within hours; they run right after this event."""
        at = customer.updated_at
        if applied and self.rules.anchored.rules:
            self._push(at, _JobRun("anchors", customer, customer.birthday_round))
        if changed and self._birthdays and customer.birthday is not None:
            self._push(at, _JobRun("birthdays", customer, customer.birthday_round))

    def _birthday_round(self, customer: Customer, now: datetime) -> None:
        """Plan what the birthday job would plan now, and come back when it has more to do."""
        if customer.deleted or customer.birthday is None:
            return
        horizon_end = now + BIRTHDAY_HORIZON
        found = plan_birthdays(
            rules=self.rules,
            customer_id=customer.id,
            birthday=customer.birthday,
            tz=customer.tz,
            now=now,
            horizon=BIRTHDAY_HORIZON + _BIRTHDAY_LOOKAHEAD,
            customer=customer.facts,
        )
        soon = [plan for plan in found if plan.send_at <= horizon_end]
        run_sync(self.store.insert_planned(soon, customer_id=customer.id, order_id=None))
        later = [
            plan.send_at
            for plan in found
            if plan.send_at > horizon_end and plan.dedupe_key not in self.store.dedupe_keys
        ]
        # Nothing ahead within the years plan_birthdays looks at: look again a horizon on.
        next_round = min(later) - BIRTHDAY_HORIZON if later else horizon_end
        if next_round <= self.until:
            self._push(next_round, _JobRun("birthdays", customer, customer.birthday_round))

    def _orders_changed(self, order_id: str, at: datetime) -> None:
        """An order placed or closed moves the customer's lapse: the lapse job looks again."""
        order = self.store.world.orders.get(order_id)
        customer = order.customer if order is not None else None
        if customer is not None:
            customer.lapse_round += 1
            self._push(at, _JobRun("lapses", customer, customer.lapse_round))

    def _lapse_round(self, customer: Customer, now: datetime) -> None:
        """Plan what the lapse job would plan now, and come back when it has more to do."""
        if customer.deleted:
            return
        standing = standing_orders(customer)
        orders = [(order.id, order.placed_at) for order in standing if order.placed_at]
        found = plan_lapses(
            rules=self.rules,
            customer_id=customer.id,
            orders=orders,
            tz=customer.tz,
            now=now,
            horizon=LAPSE_HORIZON + _LAPSE_LOOKAHEAD,
            customer=customer.facts,
        )
        horizon_end = now + LAPSE_HORIZON
        soon = [plan for plan in found if plan.send_at <= horizon_end]
        if soon:
            last = max(orders, key=lambda order: (order[1], order[0]))[0]
            run_sync(self.store.insert_planned(soon, customer_id=customer.id, order_id=last))
        later = [plan.send_at for plan in found if plan.send_at > horizon_end]
        if later and min(later) - LAPSE_HORIZON <= self.until:
            self._push(
                min(later) - LAPSE_HORIZON, _JobRun("lapses", customer, customer.lapse_round)
            )

    # -- send time: the dispatcher's decision (app/lifecycle/due.py) ---------------------------

    def _decide(self, message: Pending, now: datetime) -> None:
        store = self.store
        decision = decide_due(
            store.send_facts(message),
            rule=message.rule,
            limits=self.rules.limits,
            caps=store.cap_facts(message, now=now),
            tz=message.customer.tz,
            now=now,
        )
        if isinstance(decision, Stop):
            store.finish(message, now, decision.status, decision.reason)
        elif isinstance(decision, Defer):
            store.defer(message, decision.until)
        else:
            assert isinstance(decision, Send)
            picks: tuple[str, ...] | None = None
            if message.rule.recommend is not None:
                picks = ()
                if self.recommendations is not None:
                    picks = tuple(
                        self.recommendations.pick(
                            message.rule, message.customer, message.order, now
                        )
                    )
            store.finish(message, now, PLANNED, None, recommendations=picks)

    # -- outcomes -----------------------------------------------------------------------------

    def result(self, start: datetime) -> SimulationResult:
        decided = self.store.decided
        listed = [outcome for outcome in decided if start <= outcome.send_at <= self.until]
        listed.sort(key=listing_order)
        # Everything due by `until` was decided: what still waits is due after it.
        customers = self.store.world.customers.values()
        waiting = sum(len(customer.pending) for customer in customers)
        later = sum(1 for outcome in decided if outcome.send_at > self.until)
        return summarized(
            listed,
            start=start,
            until=self.until,
            beyond_until=waiting + later,
            events=self.events,
            duplicate_events=self.duplicates,
            unmatched_engagement=self.unmatched_engagement,
        )


def listing_order(outcome: Outcome) -> tuple[datetime, str]:
    """Messages are listed by send time, then by the shop's customer id, then in the order
    they were decided. Not in decision order alone: a customer's messages depend on that
    customer's events only, so this order is the same however the customers are split
    between processes (app/simulate/shards.py)."""
    return outcome.send_at, outcome.customer_id


def summarized(
    listed: list[Outcome],
    *,
    start: datetime,
    until: datetime,
    beyond_until: int,
    events: int,
    duplicate_events: int,
    unmatched_engagement: int,
) -> SimulationResult:
    """The result of the listed messages (in `listing_order`), with their totals."""
    totals: dict[str, dict[str, int]] = {}
    step_totals: dict[tuple[str, int], dict[str, int]] = {}
    reasons: dict[tuple[str, int, str, str], int] = {}
    for outcome in listed:
        counts = totals.setdefault(outcome.rule, dict.fromkeys(STATUSES, 0))
        counts[outcome.status] += 1
        key = (outcome.rule, outcome.step)
        step_totals.setdefault(key, dict.fromkeys(STATUSES, 0))[outcome.status] += 1
        if outcome.reason is not None:
            reason = (*key, outcome.status, outcome.reason)
            reasons[reason] = reasons.get(reason, 0) + 1
    return SimulationResult(
        start=start,
        until=until,
        outcomes=listed,
        totals=totals,
        beyond_until=beyond_until,
        events=events,
        duplicate_events=duplicate_events,
        step_totals=step_totals,
        reasons=reasons,
        unmatched_engagement=unmatched_engagement,
    )
