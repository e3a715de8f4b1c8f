"""What the database holds for the live service, kept in memory for a replay.

Customers and orders change the way intake changes their rows (app/orders/service.py and
repository.py): a customer event older than the last one applied changes nothing, an order
keeps the items it was first stored with, a cancellation may come before its order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from app.models import OrderStatus
from app.orders.schemas import GUEST_PREFIX, CustomerIn, ItemIn
from app.planner.learned import GapStats, PastOrder
from app.planner.planner import PlannedMessage
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts, ProductFacts
from app.rules.facts import item_facts as build_item_facts
from app.rules.model import Rule

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
    # (sent at, rule id, kind) of messages that went out: what frequency caps count.
    sent: list[tuple[datetime, str, str]] = field(default_factory=list)
    # Pending messages by sequence number, so a deletion can cancel them.
    pending: dict[int, Pending] = field(default_factory=dict)
    # Bumped on each change that may change the next birthday message: older rounds are void.
    birthday_round: int = 0


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
    applied: bool  # False for a stale event
    # Whether anything birthday and anchor plans read changed (the job would see it).
    changed: bool


class World:
    """Customers and orders by the shop's ids, with the ids a database would give them."""

    def __init__(self, *, default_time_zone: str) -> None:
        self.customers: dict[str, Customer] = {}
        # The first living customer with each address.
        self._by_email: dict[str, Customer] = {}
        self.orders: dict[str, Order] = {}
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
                id=len(self.customers) + 1,
                external_id=incoming.id,
                updated_at=as_of,
                tz=self.zone(None),
            )
            self.customers[incoming.id] = customer
        elif customer.updated_at > as_of:
            return Upserted(customer, applied=False, changed=False)
        # As the service stores it (`_upsert_customer`): only the fields the event carries,
        # so an update without consent, locale or time zone keeps what an earlier one said.
        given = incoming.model_fields_set

        def new(name: str, current: Any) -> Any:
            return getattr(incoming, name) if created or name in given else current

        facts = customer.facts
        before = (customer.deleted, customer.birthday, customer.time_zone, facts)
        customer.updated_at = as_of
        customer.deleted = False
        customer.email = str(incoming.email).lower()
        self._by_email.setdefault(customer.email, customer)
        customer.marketing_consent = new("marketing_consent", customer.marketing_consent)
        customer.time_zone = new("time_zone", customer.time_zone)
        customer.birthday = new("birthday", customer.birthday)
        customer.tz = self.zone(customer.time_zone)
        customer.facts = CustomerFacts(
            birthday=customer.birthday,
            attributes=new("attributes", facts.attributes),
            locale=new("locale", facts.locale),
            country=new("country", facts.country),
            tags=tuple(new("tags", facts.tags)),
            key=f"{SHOP}:{customer.external_id}",
        )
        changed = before != (
            customer.deleted,
            customer.birthday,
            customer.time_zone,
            customer.facts,
        )
        if changed:
            customer.birthday_round += 1
        return Upserted(customer, applied=True, changed=changed)

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
    return moment.astimezone(UTC)


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
