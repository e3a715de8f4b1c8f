"""Replay webhook bodies in time order through the planner and the send-time checks. Pure.

In-memory customers and orders stand in for the database, a heap of pending messages for
the outbox, the events' own times for the clock. Before an event at time T is applied,
every message due by T is decided as the dispatcher decides it: `send_blocker`, then the
frequency caps, where a deferral puts the message back in the heap at its new time. The
birthday and anchor jobs run when what they read changes, and birthdays again ahead of
each one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from app.catalog.memory import MemoryCatalog
from app.models import MessageKind, MessageStatus, OrderStatus
from app.orders.refunds import fully_refunded, refunded_rule_ids, without_refunded
from app.orders.schemas import (
    CustomerDeleted,
    CustomerIn,
    CustomerUpdated,
    Envelope,
    ItemIn,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.outbox.checks import send_blocker
from app.planner.dates import plan_birthdays
from app.planner.learned import PastOrder, latest_gap
from app.planner.limits import Defer, Skip, span_start
from app.planner.planner import (
    NO_HISTORY,
    History,
    PlannedMessage,
    delivery_fallback_keys,
    event_rules,
    matching_items,
    plan_order_event,
    settle_delivery,
)
from app.rules.facts import ItemFacts
from app.rules.loader import RuleSet
from app.simulate.intake import checked_now, replan_anchors
from app.simulate.outbox import frequency_cap, send_facts
from app.simulate.recommend import Recommendations
from app.simulate.state import (
    CLOSED,
    Customer,
    Order,
    Pending,
    ProductGaps,
    World,
    as_utc,
    item_facts,
    order_facts,
    past_orders,
)

PLANNED = "planned"  # would be sent
STATUSES = (PLANNED, "skipped", "cancelled", "expired", "held_out")
# --until defaults to this long after the last event, so late reminders still show.
DEFAULT_TAIL = timedelta(days=365)
# As app/jobs/birthdays.HORIZON: a birthday is planned this long before it is sent.
BIRTHDAY_HORIZON = timedelta(days=30)
# How far a birthday round looks past the horizon to find when the next one is needed.
_BIRTHDAY_LOOKAHEAD = timedelta(days=400)
# Job runs go before messages due at the same instant (priorities are 0..100).
_JOB_RANK = -101
_PROGRESS_EVERY = 512
_NEVER = datetime.min.replace(tzinfo=UTC)
# A customer's sends are pruned to the longest cap span once they are this many.
_SENT_KEPT = 16


class Outcome(NamedTuple):
    """What became of one planned message. (A tuple: made once per message, and cheaply.)"""

    rule: str
    template: str
    variant: str | None
    kind: str
    email: str | None
    order_id: str | None  # the shop's id
    customer_id: str  # the shop's id
    # When it went (after any frequency-cap deferral), or when it was due when stopped.
    send_at: datetime
    status: str
    reason: str | None
    # The SKUs a rule with `recommend` showed (empty without a catalog); None for the others.
    recommendations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SimulationResult:
    start: datetime
    until: datetime
    # Listed messages (send_at within [start, until]) by send_at.
    outcomes: list[Outcome]
    # Rule id -> status -> count, over the listed messages.
    totals: dict[str, dict[str, int]]
    # Planned to go after `until`: not decided, not listed.
    beyond_until: int
    events: int
    duplicate_events: int


@dataclass(frozen=True)
class _JobRun:
    """A worker job reaching one customer: the anchor job once after a change, the birthday
    job after a change and then ahead of each birthday (`round` voids older runs)."""

    job: str  # "anchors" or "birthdays"
    customer: Customer
    round: int


_Entry = tuple[datetime, int, int, Pending | _JobRun]


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
) -> SimulationResult:
    """Replay `events` (sorted by `occurred_at`, file order kept for ties) and decide every
    message due up to `until` (default: a year after the last event). Events before `start`
    (default: the first event) are replayed too; their messages are not listed.
    `recommendations` (a catalog) picks the products of rules with `recommend`."""
    ordered = sorted(events, key=lambda event: event.occurred_at)
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
    world: World = field(init=False)
    gaps: ProductGaps = field(default_factory=ProductGaps)
    clock: datetime = _NEVER
    decided: list[Outcome] = field(default_factory=list)
    heap: list[_Entry] = field(default_factory=list)
    seq: int = 0
    dedupe_keys: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)
    events: int = 0
    duplicates: int = 0

    def __post_init__(self) -> None:
        rules = self.rules.rules
        self.world = World(default_time_zone=self.default_time_zone)
        self._skip_if = {rule.id: tuple(rule.skip_if) for rule in rules}
        self._rebuy = {rule.id: rule.checks_rebuy for rule in rules}
        # The rules whose match decides what history to give the planner.
        self._history_ruleset = RuleSet(
            rules=tuple(
                rule for rule in rules if rule.send.learned is not None or self._rebuy[rule.id]
            ),
            version=self.rules.version,
        )
        self._birthdays = bool(self.rules.for_event("birthday"))
        self._anchored = RuleSet(
            rules=tuple(rule for rule in rules if rule.send.anchor is not None),
            version=self.rules.version,
        )
        # Sends older than every span can never count again: they are forgotten.
        every = [limit for rule in rules if (limit := rule.limit)] + [*self.rules.limits.values()]
        self._all_limits = list({limit.per: limit for limit in every}.values())

    # -- the loop -----------------------------------------------------------------------------

    def run(
        self, ordered: Sequence[Envelope], *, progress: Callable[[int, int], None] | None
    ) -> None:
        for number, event in enumerate(ordered, 1):
            at = as_utc(event.occurred_at)
            if at > self.until:
                break
            self._drain(at)
            self.clock = at
            self.events += 1
            if event.id in self.event_ids:
                self.duplicates += 1  # the webhook answers "duplicate" and does nothing
            else:
                self.event_ids.add(event.id)
                self._apply(event, at)
            if progress is not None and number % _PROGRESS_EVERY == 0:
                progress(number, len(ordered))
        if progress is not None:
            progress(len(ordered), len(ordered))  # what is left: messages due after the last
        self._drain(self.until)

    def _drain(self, up_to: datetime) -> None:
        heap = self.heap
        while heap and heap[0][0] <= up_to:
            due, _, _, entry = heapq.heappop(heap)
            # Planned late (a webhook after the send time): goes when seen, as live.
            now = self.clock = max(due, self.clock)
            if isinstance(entry, Pending):
                if entry.seq in entry.customer.pending:  # else cancelled meanwhile
                    self._decide(entry, now)
            elif entry.job == "anchors":
                self._replan_anchors(entry.customer, now)
            elif entry.round == entry.customer.birthday_round:
                self._birthday_round(entry.customer, now)

    def _push(self, at: datetime, rank: int, entry: Pending | _JobRun) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, rank, self.seq, entry))

    # -- events: what intake does (app/orders/service.py) -------------------------------------

    def _items(self, items: Sequence[ItemIn]) -> tuple[ItemFacts, ...]:
        """The items' facts, each with its catalog product when a catalog was given."""
        if self.catalog is None:
            return tuple(item_facts(item) for item in items)
        found = self.catalog.find([(item.product_id, item.variant_id, item.sku) for item in items])
        return tuple(
            item_facts(item, match.product.facts() if match else None)
            for item, match in zip(items, found, strict=True)
        )

    def _apply(self, event: Envelope, at: datetime) -> None:
        world = self.world
        if isinstance(event, OrderPlaced):
            customer = self._upsert(event.customer, at)
            order = world.order(event.order.id)
            world.assign(order, customer)
            order.placed_at = as_utc(event.order.created_at)
            order.total, order.currency = event.order.total, event.order.currency
            if not order.items:
                order.items = self._items(event.order.items)
                if self.recommendations is not None:
                    self.recommendations.record(order)
                if order.refunds and fully_refunded(order.items, order.refunds):
                    # Refunds that came first took every item: the order stands refunded.
                    order.status = OrderStatus.REFUNDED
            self._plan("order.created", at, order, customer)
            # A fulfilment or delivery that came first waited for the order: its messages now.
            if order.fulfilled_at is not None:
                self._plan("order.fulfilled", order.fulfilled_at, order, customer)
            if order.delivered_at is not None:
                self._plan("order.delivered", order.delivered_at, order, customer)
        elif isinstance(event, OrderFulfilled):
            # order.fulfilled, and order.delivered: a fulfilment too when none came before.
            order = world.order(event.order.id)
            if order.status == OrderStatus.OPEN:
                order.status = OrderStatus.FULFILLED
            events = []
            if order.fulfilled_at is None or event.type == "order.fulfilled":
                events.append("order.fulfilled")
            order.fulfilled_at = order.fulfilled_at or at
            if event.type == "order.delivered":
                events.append("order.delivered")
                order.delivered_at = order.delivered_at or at
            planned_for = order.customer
            if event.customer is not None:
                planned_for = self._upsert(event.customer, at)
                if order.customer is None:
                    world.assign(order, planned_for)
            # Before its order, the items are unknown: the order plans this when it comes.
            if planned_for is not None and order.placed_at is not None:
                for event_type in events:
                    when = order.delivered_at if event_type == "order.delivered" else None
                    self._plan(event_type, when or order.fulfilled_at or at, order, planned_for)
        elif isinstance(event, OrderClosed):
            self._order_closed(event)
        elif isinstance(event, CustomerUpdated):
            self._upsert(event.customer, at)
        elif isinstance(event, CustomerDeleted):
            known = world.customers.get(event.customer.id)
            if known is not None:
                self._stop(known.pending.values(), MessageStatus.CANCELLED, "customer_deleted")
                world.erase_customer(known)

    def _order_closed(self, event: OrderClosed) -> None:
        """As service._order_closed: a refund of some items cancels only the messages about
        them, unless nothing of the order is left."""
        order = self.world.order(event.order.id)
        if event.type == "order.refunded" and event.items:
            order.refunds.extend(item.model_dump() for item in event.items)
            if not fully_refunded(order.items, order.refunds):
                waiting = order.pending.values()
                moot = refunded_rule_ids(
                    {message.rule.id for message in waiting},
                    rules=self.rules,
                    items=order.items,
                    refunds=order.refunds,
                )
                moot_messages = [message for message in waiting if message.rule.id in moot]
                self._stop(moot_messages, MessageStatus.CANCELLED, "order_refunded")
                return
            # Nothing of the order is left: a full refund.
        closed = OrderStatus.CANCELLED if event.type == "order.cancelled" else OrderStatus.REFUNDED
        order.status = closed
        self._stop(order.pending.values(), MessageStatus.CANCELLED, f"order_{closed}")

    def _upsert(self, incoming: CustomerIn, at: datetime) -> Customer:
        customer, applied, changed = self.world.upsert_customer(incoming, as_of=at)
        if not customer.marketing_consent:
            # Withdrawn or never given: waiting marketing mail stops now, as intake does.
            waiting = customer.pending.values()
            marketing = [m for m in waiting if m.plan.kind == MessageKind.MARKETING]
            self._stop(marketing, MessageStatus.SKIPPED, "no_consent")
        # The worker's jobs see the change within hours; they run right after this event.
        if applied and self._anchored.rules:
            self._push(at, _JOB_RANK, _JobRun("anchors", customer, customer.birthday_round))
        if changed and self._birthdays and customer.birthday is not None:
            self._push(at, _JOB_RANK, _JobRun("birthdays", customer, customer.birthday_round))
        return customer

    def _plan(self, event_type: str, at: datetime, order: Order, customer: Customer) -> None:
        """Plan the event's messages from the order and customer as they are (service._plan)."""
        facts = order_facts(order, customer)
        # The rules whose match decides what history to give the planner (the others'
        # matches would change nothing here).
        matching = [
            rule
            for rule in event_rules(event_type, order=facts, rules=self._history_ruleset)
            if matching_items(rule, facts, customer.facts) is not None
        ]
        learned = [rule for rule in matching if rule.send.learned is not None]
        history = NO_HISTORY
        if matching:
            history = History(
                orders=past_orders(order, customer),
                product_gaps={rule.id: self.gaps.stats(rule.id) for rule in learned},
            )
        planned = plan_order_event(
            event=event_type,
            occurred_at=at,
            order=facts,
            customer_id=customer.id,
            rules=self.rules,
            tz=customer.tz,
            customer=customer.facts,
            history=history,
        )
        if order.refunds:  # rare: most orders plan with no refund to look at
            # Planned from the order as placed, as it would have been before the refund came.
            planned = without_refunded(
                planned, rules=self.rules, items=order.items, refunds=order.refunds
            )
        planned = checked_now(
            planned,
            rules=self.rules,
            rebuy=self._rebuy,
            customer=customer,
            facts=facts,
            history=history,
            now=at,
        )
        if event_type == "order.delivered":
            fallbacks = delivery_fallback_keys(planned)
            waiting = {message.plan.dedupe_key: message for message in order.pending.values()}
            # Seen and no longer waiting: decided (as the outbox's statuses say live).
            decided = {key for key in fallbacks if key in self.dedupe_keys and key not in waiting}
            planned, replaced = settle_delivery(planned, decided=decided)
            self._stop(
                [waiting[key] for key in replaced if key in waiting],
                MessageStatus.CANCELLED,
                "delivered",
            )
        if learned and order.placed_at is not None and order.status not in CLOSED:
            # This order closes a repurchase gap: every later plan learns from it.
            this = PastOrder(placed_at=order.placed_at, items=order.items)
            for rule in learned:
                gap = latest_gap(rule, history.orders, this)
                if gap is not None:
                    self.gaps.record(rule.id, order.id, gap)
        self._insert(planned, customer, order)

    def _insert(
        self, planned: Iterable[PlannedMessage], customer: Customer, order: Order | None
    ) -> None:
        """Like insert_planned: a dedupe key seen before plans nothing."""
        for plan in planned:
            if plan.dedupe_key in self.dedupe_keys:
                continue
            self.dedupe_keys.add(plan.dedupe_key)
            if plan.status != MessageStatus.SCHEDULED:  # held out, or stopped while planning
                self._record(plan, customer, order, plan.send_at, plan.status, plan.reason)
                continue
            rule = self.rules.by_id(plan.rule_id)
            assert rule is not None
            self.seq += 1
            pending = Pending(self.seq, plan, rule, customer, order, plan.send_at)
            customer.pending[pending.seq] = pending
            if order is not None:
                order.pending[pending.seq] = pending
            heapq.heappush(self.heap, (plan.send_at, -plan.priority, pending.seq, pending))

    def _stop(self, waiting: Iterable[Pending], status: str, reason: str) -> None:
        for message in list(waiting):
            self._finish(message, message.due, status, reason)

    # -- the worker's jobs (app/jobs/) ---------------------------------------------------------

    def _replan_anchors(self, customer: Customer, now: datetime) -> None:
        for found in replan_anchors(anchored=self._anchored, customer=customer, now=now):
            self._insert(found.dated, customer, found.order)
            fallbacks = [
                message
                for message in found.order.pending.values()
                if message.plan.dedupe_key in found.fallback_keys
            ]
            self._stop(fallbacks, MessageStatus.CANCELLED, "anchor_date_known")

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
        self._insert([plan for plan in found if plan.send_at <= horizon_end], customer, None)
        later = [
            plan.send_at
            for plan in found
            if plan.send_at > horizon_end and plan.dedupe_key not in self.dedupe_keys
        ]
        # Nothing ahead within the years plan_birthdays looks at: look again a horizon on.
        next_round = min(later) - BIRTHDAY_HORIZON if later else horizon_end
        if next_round <= self.until:
            self._push(
                next_round, _JOB_RANK, _JobRun("birthdays", customer, customer.birthday_round)
            )

    # -- send time: what the dispatcher does (app/outbox/dispatcher.py) -----------------------

    def _decide(self, message: Pending, now: datetime) -> None:
        rule_id = message.rule.id
        facts = send_facts(message, skip_if=self._skip_if[rule_id], rebuy=self._rebuy[rule_id])
        blocker = send_blocker(facts, now=now)
        if blocker is not None:
            self._finish(message, now, *blocker)
            return
        capped = frequency_cap(message, now=now, limits=self.rules.limits)
        if isinstance(capped, Skip):
            self._finish(message, now, MessageStatus.SKIPPED, capped.reason)
        elif isinstance(capped, Defer):
            message.due = capped.until
            heapq.heappush(self.heap, (capped.until, -message.plan.priority, message.seq, message))
        else:
            picks: tuple[str, ...] | None = None
            if message.rule.recommend is not None:
                picks = ()
                if self.recommendations is not None:
                    picks = tuple(
                        self.recommendations.pick(
                            message.rule, message.customer, message.order, now
                        )
                    )
            self._finish(message, now, PLANNED, None, recommendations=picks)

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(
        self,
        message: Pending,
        at: datetime,
        status: str,
        reason: str | None,
        *,
        recommendations: tuple[str, ...] | None = None,
    ) -> None:
        customer, order = message.customer, message.order
        del customer.pending[message.seq]
        if order is not None:
            del order.pending[message.seq]
        if status == PLANNED and self._all_limits:
            if len(customer.sent) >= _SENT_KEPT:
                since = span_start(at, self._all_limits)
                customer.sent = [entry for entry in customer.sent if entry[0] > since]
            customer.sent.append((at, message.rule.id, message.plan.kind))
        self._record(message.plan, customer, order, at, status, reason, recommendations)

    def _record(
        self,
        plan: PlannedMessage,
        customer: Customer,
        order: Order | None,
        at: datetime,
        status: str,
        reason: str | None,
        recommendations: tuple[str, ...] | None = None,
    ) -> None:
        self.decided.append(
            Outcome(
                rule=plan.rule_id,
                template=plan.template,
                variant=plan.variant,
                kind=plan.kind,
                email=customer.email,
                order_id=order.external_id if order is not None else None,
                customer_id=customer.external_id,
                send_at=at,
                status=str(status),
                reason=reason,
                recommendations=recommendations,
            )
        )

    def result(self, start: datetime) -> SimulationResult:
        listed = [outcome for outcome in self.decided if start <= outcome.send_at <= self.until]
        listed.sort(key=lambda outcome: outcome.send_at)
        totals: dict[str, dict[str, int]] = {}
        for outcome in listed:
            counts = totals.setdefault(outcome.rule, dict.fromkeys(STATUSES, 0))
            counts[outcome.status] += 1
        # Everything due by `until` was decided: what still waits is due after it.
        waiting = sum(len(customer.pending) for customer in self.world.customers.values())
        later = sum(1 for outcome in self.decided if outcome.send_at > self.until)
        return SimulationResult(
            start=start,
            until=self.until,
            outcomes=listed,
            totals=totals,
            beyond_until=waiting + later,
            events=self.events,
            duplicate_events=self.duplicates,
        )
