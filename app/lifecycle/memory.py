"""The lifecycle's store in memory (app/lifecycle/store.py), for `simulate`.

What the database holds for the live service, kept in memory: customers and orders change
the way intake changes their rows (app/orders/repository.py): a customer event older than
the last one applied changes nothing, an order keeps the items it was first stored with, a
cancellation may come before its order. The outbox is a heap of waiting messages by due
time, and a list of what became of each one (`Outcome`), which the replay reports.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from app.events import GUEST_PREFIX, CustomerIn, CustomerRef, ItemIn, OrderIn
from app.lifecycle.checks import Purchase, SendFacts
from app.lifecycle.due import CapFacts, Sent, Waiting, bought_after, cap_limits
from app.lifecycle.refunds import items_left
from app.lifecycle.steps import next_step, sequence_facts
from app.lifecycle.store import CustomerState, OrderState
from app.lifecycle.store import Upserted as StoreUpserted
from app.planner.learned import GapStats, PastOrder
from app.planner.limits import span_start
from app.planner.planner import (
    PlannedMessage,
    first_step_key,
    review_item_position,
    step_dedupe_key,
)
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts, ProductFacts
from app.rules.facts import item_facts as build_item_facts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.statuses import MessageKind, MessageStatus, OrderStatus

# POST /webhooks/orders stores everything under this shop (app/intake/aftersale.py); variants
# and holdout groups are drawn from "shop:customer id", so a replay must use it too.
SHOP = "default"
CLOSED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
# As in app/orders/repository.py: the history a learned rule sees.
PAST_ORDERS = 50
GAPS_PER_RULE = 1000


@dataclass(eq=False, slots=True)
class Customer:
    id: int
    external_id: str
    updated_at: datetime
    tz: ZoneInfo
    email: str | None = None
    marketing_consent: bool = False
    time_zone: str | None = None
    birthday: date | None = None
    deleted: bool = False
    facts: CustomerFacts = field(default_factory=CustomerFacts)
    orders: list[Order] = field(default_factory=list)
    # Messages that went out: what frequency caps count.
    sent: list[Sent] = field(default_factory=list)
    # Pending messages by sequence number, so a deletion can cancel them.
    pending: dict[int, Pending] = field(default_factory=dict)
    # Bumped on each change that may change the next birthday message: older rounds are void.
    birthday_round: int = 0
    # Bumped on each order placed or closed (what a lapse is computed from), likewise.
    lapse_round: int = 0


@dataclass(eq=False, slots=True)
class Order:
    id: int
    external_id: str
    status: str = OrderStatus.OPEN
    customer: Customer | None = None
    placed_at: datetime | None = None
    fulfilled_at: datetime | None = None
    delivered_at: datetime | None = None
    items: tuple[ItemFacts, ...] = ()
    total: Decimal | None = None
    currency: str | None = None
    # Partial refunds by SKU, as `orders.refunds` holds them ({"sku", "quantity"}).
    refunds: list[dict[str, object]] = field(default_factory=list)
    pending: dict[int, Pending] = field(default_factory=dict)

    @property
    def stands(self) -> bool:
        """Placed and not cancelled or refunded: counts as a purchase."""
        return self.placed_at is not None and self.status not in CLOSED


@dataclass(eq=False, slots=True)
class Pending:
    """A scheduled message: the outbox row waiting for its send time (moved by deferrals)."""

    seq: int
    plan: PlannedMessage
    rule: Rule
    customer: Customer
    order: Order | None
    due: datetime


class Upserted(NamedTuple):
    customer: Customer
    created: bool
    applied: bool  # False for a stale event
    # Whether anything birthday and anchor plans read changed (the job would see it).
    changed: bool


class World:
    """Customers and orders by the shop's ids, with the ids a database would give them."""

    def __init__(self, *, default_time_zone: str) -> None:
        self.customers: dict[str, Customer] = {}
        self.by_id: dict[int, Customer] = {}
        # The first living customer with each address.
        self._by_email: dict[str, Customer] = {}
        self.orders: dict[str, Order] = {}
        self.orders_by_id: dict[int, Order] = {}
        self._default_zone = default_time_zone
        self._zones: dict[str, ZoneInfo] = {}

    def zone(self, name: str | None) -> ZoneInfo:
        key = name or self._default_zone
        zone = self._zones.get(key)
        if zone is None:
            zone = self._zones[key] = ZoneInfo(key)
        return zone

    def upsert_customer(self, incoming: CustomerIn, *, as_of: datetime) -> Upserted:
        """Create or update the person's customer, found by id, else by address (as
        `repository.find_person`); an event older than the last one applied changes nothing."""
        customer = self.customers.get(incoming.id)
        if customer is None:
            customer = self._by_email.get(str(incoming.email).strip().lower())
            if customer is not None and customer.deleted:
                customer = None
            if customer is not None and _takes_over(customer.external_id, incoming.id):
                # A guest made an account: the customer takes the shop's id.
                del self.customers[customer.external_id]
                customer.external_id = incoming.id
                self.customers[incoming.id] = customer
        created = customer is None
        if customer is None:
            customer = Customer(
                id=len(self.by_id) + 1,
                external_id=incoming.id,
                updated_at=as_of,
                tz=self.zone(None),
            )
            self.customers[incoming.id] = customer
            self.by_id[customer.id] = customer
        elif customer.updated_at > as_of:
            return Upserted(customer, created=False, applied=False, changed=False)
        # As the service stores it (`_upsert_customer`): only the fields the event carries,
        # so an update without consent, locale or time zone keeps what an earlier one said.
        given = incoming.model_fields_set
        facts = customer.facts
        before = (customer.deleted, customer.birthday, customer.time_zone, facts)
        customer.updated_at = as_of
        customer.deleted = False
        customer.email = str(incoming.email).lower()
        self._by_email.setdefault(customer.email, customer)
        if created or "marketing_consent" in given:
            customer.marketing_consent = incoming.marketing_consent
        if created or "time_zone" in given:
            customer.time_zone = incoming.time_zone
        if created or "birthday" in given:
            customer.birthday = incoming.birthday
        customer.tz = self.zone(customer.time_zone)
        fields = (
            customer.birthday,
            incoming.attributes if created or "attributes" in given else facts.attributes,
            incoming.locale if created or "locale" in given else facts.locale,
            incoming.country if created or "country" in given else facts.country,
            tuple(incoming.tags) if created or "tags" in given else facts.tags,
            f"{SHOP}:{customer.external_id}",
        )
        # Most events repeat what is known: the facts stay the same object then.
        if fields != (
            facts.birthday,
            facts.attributes,
            facts.locale,
            facts.country,
            facts.tags,
            facts.key,
        ) or (facts.orders, facts.spent) != (None, None):
            birthday, attributes, locale, country, tags, key = fields
            customer.facts = CustomerFacts(
                birthday=birthday,
                attributes=attributes,
                locale=locale,
                country=country,
                tags=tags,
                key=key,
            )
        changed = before != (
            customer.deleted,
            customer.birthday,
            customer.time_zone,
            customer.facts,
        )
        if changed:
            customer.birthday_round += 1
        return Upserted(customer, created=created, applied=True, changed=changed)

    def living_at(self, email: str) -> list[Customer]:
        """The customer not erased at this address, if any."""
        found = self._by_email.get(email.strip().lower())
        return [found] if found is not None and not found.deleted else []

    def erase_customer(self, customer: Customer) -> None:
        """What erasure leaves: no personal data on the customer or in their items."""
        customer.deleted = True
        if customer.email is not None and self._by_email.get(customer.email) is customer:
            del self._by_email[customer.email]
        customer.email = None
        customer.marketing_consent = False
        customer.time_zone = None
        customer.birthday = None
        customer.tz = self.zone(None)
        customer.facts = CustomerFacts(key=customer.facts.key)
        customer.birthday_round += 1
        for order in customer.orders:
            order.items = tuple(replace(item, attributes={}) for item in order.items)

    def order(self, external_id: str) -> Order:
        """The order, created bare when an event about it comes before the order itself."""
        order = self.orders.get(external_id)
        if order is None:
            order = self.orders[external_id] = Order(
                id=len(self.orders) + 1, external_id=external_id
            )
            self.orders_by_id[order.id] = order
        return order

    @staticmethod
    def assign(order: Order, customer: Customer) -> None:
        if order.customer is customer:
            return
        if order.customer is not None:
            order.customer.orders.remove(order)
        order.customer = customer
        customer.orders.append(order)


def _takes_over(known_as: str, incoming: str) -> bool:
    return known_as.startswith(GUEST_PREFIX) and not incoming.startswith(GUEST_PREFIX)


def item_facts(item: ItemIn, product: ProductFacts | None = None) -> ItemFacts:
    """As intake builds them (`OrderItem.facts`), with the item's catalog product if known."""
    return build_item_facts(
        sku=item.sku,
        category=item.category,
        quantity=item.quantity,
        unit_price=item.unit_price,
        tags=item.tags,
        attributes=item.attributes,
        product=product,
    )


def as_utc(moment: datetime) -> datetime:
    # One tzinfo for every instant: comparisons in the heap stay cheap and output is UTC.
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def order_facts(order: Order, customer: Customer) -> OrderFacts:
    return OrderFacts(
        id=order.id,
        status=order.status,
        placed_at=order.placed_at,
        items=order.items,
        total=order.total,
        currency=order.currency,
        first_order=first_order(order, customer),
        delivered_at=order.delivered_at,
    )


def standing_orders(customer: Customer) -> list[Order]:
    """Placed and not cancelled or refunded, oldest first."""
    standing = [order for order in customer.orders if order.stands]
    standing.sort(key=attrgetter("placed_at"))
    return standing


def first_order(order: Order, customer: Customer) -> bool:
    """No earlier order of this customer (cancelled ones count: they were orders)."""
    placed = order.placed_at
    if placed is None:
        return not any(other is not order for other in customer.orders)
    return not any(
        other is not order and other.placed_at is not None and other.placed_at < placed
        for other in customer.orders
    )


def past_orders(order: Order, customer: Customer) -> list[PastOrder]:
    """The customer's latest standing orders other than this one, newest first."""
    standing = [
        PastOrder(placed_at=other.placed_at, items=other.items)
        for other in customer.orders
        if other is not order and other.placed_at is not None and other.status not in CLOSED
    ]
    standing.sort(key=attrgetter("placed_at"), reverse=True)
    return standing[:PAST_ORDERS]


class ProductGaps:
    """Each learned rule's latest observed gaps across customers, as product_gap_stats sums."""

    def __init__(self) -> None:
        self._gaps: dict[str, deque[float]] = {}
        self._seen: set[tuple[str, int]] = set()
        self._stats: dict[str, GapStats] = {}

    def stats(self, rule_id: str) -> GapStats:
        stats = self._stats.get(rule_id)
        if stats is None:
            gaps = self._gaps.get(rule_id, ())
            stats = self._stats[rule_id] = GapStats(count=len(gaps), sum_log_days=sum(gaps))
        return stats

    def record(self, rule_id: str, order_id: int, log_days: float) -> None:
        # One observation per rule and order, like the unique key on repurchase_gaps.
        if (rule_id, order_id) in self._seen:
            return
        self._seen.add((rule_id, order_id))
        self._gaps.setdefault(rule_id, deque(maxlen=GAPS_PER_RULE)).append(log_days)
        self._stats.pop(rule_id, None)


# What a message that went out is recorded as (the replay lists it as "would be sent").
PLANNED = "planned"
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
    # Its place in the rule's sequence, and that step's `if:` as written (None without one).
    step: int = 1
    condition: str | None = None


# The outbox heap: (due, rank, sequence, entry). Messages rank by -priority; the replay's own
# entries (worker jobs) may share the heap with a rank of their own.
Entry = tuple[datetime, int, int, object]
_T = TypeVar("_T")


def run_sync(step: Coroutine[object, object, _T]) -> _T:
    """Run a lifecycle flow on the memory store to its end: it never suspends, so no event
    loop is needed (and a replay may run inside one)."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("a memory store call suspended")


class MemoryStore:
    """The lifecycle's store (app/lifecycle/store.py) on `World`, with an outbox heap.

    `customer_changed(customer, applied, changed)` is told of every customer upsert, and
    `items_stored(order)` of every order's first items: the replay schedules its worker jobs
    and feeds its recommendations from them."""

    def __init__(
        self,
        *,
        rules: RuleSet,
        default_time_zone: str,
        catalog: Callable[[Sequence[ItemIn]], Sequence[ProductFacts | None]] | None = None,
        customer_changed: Callable[[Customer, bool, bool], None] | None = None,
        items_stored: Callable[[Order], None] | None = None,
    ) -> None:
        self.rules = rules
        self.world = World(default_time_zone=default_time_zone)
        self.gaps = ProductGaps()
        self.heap: list[Entry] = []
        self.seq = 0
        self.dedupe_keys: set[str] = set()
        self.decided: list[Outcome] = []
        self._waiting: dict[int, Pending] = {}
        self._waiting_by_key: dict[str, Pending] = {}
        self._catalog = catalog
        # When each step of a sequence was sent (or due, when skipped): what the next step's
        # `if:` counts purchases from. By dedupe key.
        self._step_at: dict[str, datetime] = {}
        # Sent messages by (the shop's order id, else customer id; rule; step), and what a
        # person did with them (`engage`): opened, clicked. By dedupe key.
        self._sent: dict[tuple[str, str, int], tuple[str, datetime]] = {}
        self._engaged: dict[str, set[str]] = {}
        # Sent review requests (rules with `review`) by (the shop's order id, rule): their
        # dedupe keys and when they went; the ids given to the reviews answered on them.
        self._review_requests: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
        self._review_ids: dict[tuple[str, int], int] = {}
        self._conditions: dict[tuple[str, int], str | None] = {}
        self._customer_changed = customer_changed
        self._items_stored = items_stored
        # Sends older than every span can never count again: they are forgotten.
        every = [limit for rule in rules.rules if (limit := rule.limit)]
        every += [*rules.limits.values()]
        self._all_limits = list({limit.per: limit for limit in every}.values())

    # -- views ----------------------------------------------------------------------------------

    @staticmethod
    def state(customer: Customer) -> CustomerState:
        return CustomerState(
            id=customer.id,
            email=customer.email,
            marketing_consent=customer.marketing_consent,
            deleted=customer.deleted,
            tz=customer.tz,
            facts=customer.facts,
        )

    @staticmethod
    def order_state(order: Order) -> OrderState:
        return OrderState(
            id=order.id,
            customer_id=order.customer.id if order.customer is not None else None,
            status=order.status,
            placed_at=order.placed_at,
            fulfilled_at=order.fulfilled_at,
            delivered_at=order.delivered_at,
            total=order.total,
            currency=order.currency,
            refunds=order.refunds,
        )

    def _order(self, order: OrderState) -> Order:
        return self.world.orders_by_id[order.id]

    # -- customers ------------------------------------------------------------------------------

    async def upsert_customer(self, incoming: CustomerIn, *, as_of: datetime) -> StoreUpserted:
        customer, created, applied, changed = self.world.upsert_customer(
            incoming, as_of=as_utc(as_of)
        )
        if self._customer_changed is not None:
            self._customer_changed(customer, applied, changed)
        return StoreUpserted(self.state(customer), created, applied, changed)

    async def customer(self, customer_id: int) -> CustomerState:
        return self.state(self.world.by_id[customer_id])

    async def erase_customer(self, incoming: CustomerRef, *, now: datetime) -> int:
        found = [self.world.customers.get(incoming.id)]
        if incoming.email:
            found += self.world.living_at(incoming.email)
        cancelled = 0
        for customer in {id(c): c for c in found if c is not None}.values():
            cancelled += self._stop(
                customer.pending.values(), MessageStatus.CANCELLED, "customer_deleted"
            )
            self.world.erase_customer(customer)
        return cancelled

    # -- orders ---------------------------------------------------------------------------------

    async def place_order(
        self, order: OrderIn, *, customer: CustomerState, email: str | None
    ) -> tuple[OrderState, bool]:
        new = order.id not in self.world.orders
        stored = self.world.order(order.id)
        self.world.assign(stored, self.world.by_id[customer.id])
        stored.placed_at = as_utc(order.created_at)
        stored.total, stored.currency = order.total, order.currency
        return self.order_state(stored), new

    async def order(self, external_id: str) -> OrderState:
        return self.order_state(self.world.order(external_id))

    async def update_order(self, order: OrderState, **changes: object) -> OrderState:
        stored = self._order(order)
        for name, value in changes.items():
            if name == "customer_id":
                assert isinstance(value, int)
                self.world.assign(stored, self.world.by_id[value])
            elif name == "refunds":
                stored.refunds = list(value)  # type: ignore[call-overload]
            elif isinstance(value, datetime):
                setattr(stored, name, as_utc(value))
            else:
                setattr(stored, name, value)
        return self.order_state(stored)

    async def close_order(
        self, order: OrderState, status: str, *, at: datetime | None
    ) -> OrderState:
        stored = self._order(order)
        stored.status = status
        return self.order_state(stored)

    async def has_items(self, order: OrderState) -> bool:
        return bool(self._order(order).items)

    async def add_items(self, order: OrderState, items: Sequence[ItemIn]) -> tuple[ItemFacts, ...]:
        stored = self._order(order)
        if self._catalog is None:
            stored.items = tuple(item_facts(item) for item in items)
        else:
            products = self._catalog(items)
            stored.items = tuple(
                item_facts(item, product) for item, product in zip(items, products, strict=True)
            )
        if self._items_stored is not None:
            self._items_stored(stored)
        return stored.items

    async def items(self, order: OrderState) -> tuple[ItemFacts, ...]:
        return self._order(order).items

    async def is_first_order(self, order: OrderState, customer: CustomerState) -> bool:
        return first_order(self._order(order), self.world.by_id[customer.id])

    async def past_orders(self, order: OrderState, customer: CustomerState) -> list[PastOrder]:
        return past_orders(self._order(order), self.world.by_id[customer.id])

    async def customer_totals(self, customer: CustomerState) -> tuple[int, dict[str, Decimal]]:
        standing = standing_orders(self.world.by_id[customer.id])
        spent: dict[str, Decimal] = {}
        for order in standing:
            if order.currency is not None and order.total is not None:
                spent[order.currency] = spent.get(order.currency, Decimal(0)) + order.total
        return len(standing), spent

    async def standing_orders(self, customer: CustomerState) -> list[OrderState]:
        return [self.order_state(o) for o in standing_orders(self.world.by_id[customer.id])]

    async def order_stored(
        self, order: OrderState, incoming: OrderIn, *, new_order: bool, new_customer: bool
    ) -> None:
        return None  # no coupons and no stats offline

    # -- learned timing ------------------------------------------------------------------------

    async def product_gaps(self, rule_ids: Sequence[str]) -> dict[str, GapStats]:
        return {rule_id: self.gaps.stats(rule_id) for rule_id in rule_ids}

    async def record_gap(
        self,
        rule_id: str,
        *,
        customer: CustomerState,
        order: OrderState,
        log_days: float,
        observed_at: datetime,
    ) -> None:
        self.gaps.record(rule_id, order.id, log_days)

    # -- the outbox ----------------------------------------------------------------------------

    async def is_suppressed(self, email: str) -> bool:
        return False  # no suppression list offline

    async def decided_keys(self, dedupe_keys: Collection[str]) -> set[str]:
        return {
            key
            for key in dedupe_keys
            if key in self.dedupe_keys and key not in self._waiting_by_key
        }

    async def insert_planned(
        self, planned: Sequence[PlannedMessage], *, customer_id: int, order_id: int | None
    ) -> int:
        """Like the outbox's: a dedupe key seen before plans nothing."""
        customer = self.world.by_id[customer_id]
        order = self.world.orders_by_id[order_id] if order_id is not None else None
        created = 0
        for plan in planned:
            if plan.dedupe_key in self.dedupe_keys:
                continue
            self.dedupe_keys.add(plan.dedupe_key)
            created += 1
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
            self._waiting[pending.seq] = pending
            self._waiting_by_key[plan.dedupe_key] = pending
            heapq.heappush(self.heap, (plan.send_at, -plan.priority, pending.seq, pending))
        return created

    async def waiting(self, order: OrderState) -> list[tuple[int, str]]:
        return [(m.seq, m.rule.id) for m in self._order(order).pending.values()]

    async def cancel_waiting(
        self,
        *,
        reason: str,
        order: OrderState | None = None,
        ids: Sequence[int] | None = None,
        dedupe_keys: Sequence[str] | None = None,
    ) -> int:
        if ids is not None:
            found = [self._waiting[seq] for seq in ids if seq in self._waiting]
        elif dedupe_keys is not None:
            found = [self._waiting_by_key[k] for k in dedupe_keys if k in self._waiting_by_key]
        elif order is not None:
            found = list(self._order(order).pending.values())
        else:
            found = []
        if order is not None:
            found = [message for message in found if message.order is self._order(order)]
        return self._stop(found, MessageStatus.CANCELLED, reason)

    async def skip_waiting_marketing(self, customer: CustomerState) -> int:
        waiting = self.world.by_id[customer.id].pending.values()
        marketing = [m for m in waiting if m.plan.kind == MessageKind.MARKETING]
        return self._stop(marketing, MessageStatus.SKIPPED, "no_consent")

    # -- due messages --------------------------------------------------------------------------

    def is_waiting(self, message: Pending) -> bool:
        return message.seq in self._waiting

    def defer(self, message: Pending, until: datetime) -> None:
        message.due = until
        heapq.heappush(self.heap, (until, -message.plan.priority, message.seq, message))

    def send_facts(self, message: Pending) -> SendFacts:
        """The facts the send-time checks decide on, as the dispatcher gathers them."""
        plan, customer, order, rule = message.plan, message.customer, message.order, message.rule
        purchased: list[Purchase] = []
        bought_since: list[Purchase] = []
        others: list[tuple[datetime, Purchase]] = []
        # Only a rule that a later purchase can stop looks at what was bought since (the
        # dispatcher loads that history for those alone).
        if rule.reads_purchases and order is not None:
            item_filter = rule.when.items
            # Less what was refunded, as the dispatcher's matched_items.
            items = items_left(order.items, order.refunds) if order.refunds else order.items
            purchased = [
                Purchase.of(item)
                for item in items
                if item_filter is None or item_filter.matches(item)
            ]
            others = [
                (other.placed_at, Purchase.of(item))
                for other in customer.orders
                if other is not order and other.stands and other.placed_at is not None
                for item in other.items
            ]
            if rule.checks_rebuy:
                bought_since = bought_after(order.placed_at, others)
        previous_key = (
            step_dedupe_key(first_step_key(plan.dedupe_key), plan.step - 1)
            if plan.step > 1
            else None
        )
        previous = self._step_at.get(previous_key) if previous_key is not None else None
        # Offline, opens and clicks are those the input tells of (`engage`); no answers.
        did = self._engaged.get(previous_key, ()) if previous_key is not None else ()
        sequence = sequence_facts(
            rule,
            step=plan.step,
            purchased=purchased,
            purchases=others,
            previous_at=previous,
            event_at=plan.event_at or (order.placed_at if order is not None else None),
            opened="opened" in did,
            clicked="clicked" in did,
        )
        return SendFacts(
            kind=plan.kind,
            expires_at=plan.expires_at,
            customer_deleted=customer.deleted,
            email=customer.email,
            marketing_consent=customer.marketing_consent,
            suppressed=False,  # no suppression list offline
            order_status=order.status if order is not None else None,
            skip_if=tuple(rule.skip_if),
            purchased=purchased,
            bought_since=bought_since,
            sequence=sequence,
            condition=rule.if_,
            orders=len(standing_orders(customer)) if rule.if_ is not None else 0,
        )

    def cap_facts(self, message: Pending, *, now: datetime) -> CapFacts:
        """What the caps count: the customer's sends, and their other messages due now."""
        rank = (message.plan.priority, -message.seq)
        if not cap_limits(message.rule, message.plan.kind, self.rules.limits):
            return CapFacts(rank=rank)
        customer = message.customer
        waiting = [
            Waiting(other.rule.id, other.plan.kind, (other.plan.priority, -other.seq))
            for other in customer.pending.values()
            if other is not message and other.due <= now
        ]
        return CapFacts(rank=rank, sent=customer.sent, waiting=waiting)

    def finish(
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
        del self._waiting[message.seq]
        del self._waiting_by_key[message.plan.dedupe_key]
        if status == PLANNED and self._all_limits:
            if len(customer.sent) >= _SENT_KEPT:
                since = span_start(at, self._all_limits)
                customer.sent = [entry for entry in customer.sent if entry.at > since]
            customer.sent.append(Sent(at, message.rule.id, message.plan.kind))
        self._record(message.plan, customer, order, at, status, reason, recommendations)
        if message.rule.steps:
            self._next_step(message, at, status, reason)

    def _next_step(self, message: Pending, at: datetime, status: str, reason: str | None) -> None:
        """Plan the sequence's next step once this one is decided, as the dispatcher does."""
        plan = message.plan
        self._step_at[plan.dedupe_key] = at if status == PLANNED else plan.send_at
        following = next_step(
            message.rule,
            step=plan.step,
            dedupe_key=plan.dedupe_key,
            variant=plan.variant,
            event_at=plan.event_at,
            send_at=plan.send_at,
            status=MessageStatus.SENT if status == PLANNED else status,
            reason=reason,
            decided_at=at,
            tz=message.customer.tz,
        )
        if following is not None:
            order = message.order
            run_sync(
                self.insert_planned(
                    [following],
                    customer_id=message.customer.id,
                    order_id=order.id if order is not None else None,
                )
            )

    def _stop(self, waiting: Iterable[Pending], status: str, reason: str) -> int:
        stopped = list(waiting)
        for message in stopped:
            self.finish(message, message.due, status, reason)
        return len(stopped)

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
        about = order.external_id if order is not None else customer.external_id
        if status == PLANNED:
            self._sent[(about, plan.rule_id, plan.step)] = (plan.dedupe_key, at)
            rule = self.rules.by_id(plan.rule_id)
            if order is not None and rule is not None and rule.review is not None:
                sent = self._review_requests.setdefault((about, plan.rule_id), [])
                sent.append((plan.dedupe_key, at))
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
                step=plan.step,
                condition=self._condition(plan.rule_id, plan.step),
            )
        )

    def _condition(self, rule_id: str, step: int) -> str | None:
        """A step's `if:` as a rule file would write it, e.g. "not_opened, not_purchased:
        same_category"."""
        key = (rule_id, step)
        if key not in self._conditions:
            rule = self.rules.by_id(rule_id)
            spec = rule.step(step) if rule is not None else None
            written = None
            if spec is not None and spec.if_ is not None:
                given = spec.if_.model_dump(exclude_none=True)
                written = ", ".join(
                    name if value is True else f"{name}: {value}" for name, value in given.items()
                )
            self._conditions[key] = written
        return self._conditions[key]

    def reviewed(
        self, *, at: datetime, order_id: str, rule_id: str, sku: str | None
    ) -> tuple[int, Order] | None:
        """A person's review on the request this rule sent about this order by `at`, of the
        item with `sku` (else the first it asked about): the review's id (the same item
        reviewed again keeps it, as the service's row does) and the order; None when no such
        request had gone."""
        order = self.world.orders.get(order_id)
        if order is None or order.customer is None:
            return None
        for key, sent_at in self._review_requests.get((order_id, rule_id), ()):
            if sent_at > at:
                continue
            position = review_item_position(key)
            asked = range(len(order.items)) if position is None else (position,)
            for at_position in asked:
                if at_position < len(order.items) and sku in (None, order.items[at_position].sku):
                    mark = (key, at_position)
                    return self._review_ids.setdefault(mark, len(self._review_ids) + 1), order
        return None

    def engage(self, kind: str, *, at: datetime, about: str, rule_id: str, step: int) -> bool:
        """A person opened (`kind` "opened") or clicked in the message sent for this rule and
        step about this order (or customer), at `at`; False when no such message had gone."""
        sent = self._sent.get((about, rule_id, step))
        if sent is None or sent[1] > at:
            return False
        self._engaged.setdefault(sent[0], set()).add(kind)
        return True
