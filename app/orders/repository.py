"""All SQL of order intake. Functions flush; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, literal, select, union_all, update
from sqlalchemy import insert as core_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import contains_eager

from app.db import dialect_insert, engine_of, utcnow
from app.erasures import id_subject
from app.events import GUEST_PREFIX
from app.models import (
    Customer,
    Erasure,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    RepurchaseGap,
    Suppression,
    WebhookDelivery,
    with_products,
)
from app.planner.learned import GapStats, PastOrder
from app.privacy import email_digest

# Learned timing follows the product's recent behaviour: its latest observations only.
GAPS_PER_RULE = 1000
PAST_ORDERS = 50
# webhook_deliveries.event_type: a longer topic is one we do not handle anyway.
EVENT_TYPE_LENGTH = 64
# Rows an upsert returns replace what the session may hold of them from earlier reads.
_FRESH = {"populate_existing": True}

# The statements every order runs are built once, with bound parameters: building one and
# computing its cache key costs more CPU than sending it and reading the answer. Those that
# load no ORM object name table columns, which spares them the ORM's execution path.
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ORDERS = cast(Table, Order.__table__)
_ITEMS = cast(Table, OrderItem.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)
_GAPS = cast(Table, RepurchaseGap.__table__)
_LINK_DELIVERY = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery"))
    .values(customer_id=bindparam("customer"))
)
# Two equalities, not an expanding IN, which is rendered anew on every execution.
_SUPPRESSED = select(_SUPPRESSIONS.c.id).where(
    (_SUPPRESSIONS.c.email == bindparam("address")) | (_SUPPRESSIONS.c.email == bindparam("digest"))
)
_OTHER_ORDERS = select(func.count()).where(
    _ORDERS.c.customer_id == bindparam("customer"), _ORDERS.c.id != bindparam("order")
)
_EARLIER_ORDERS = _OTHER_ORDERS.where(_ORDERS.c.placed_at < bindparam("placed_at"))
_PAST = (
    select(_ORDERS.c.id, _ORDERS.c.placed_at)
    .where(
        _ORDERS.c.customer_id == bindparam("customer"),
        _ORDERS.c.id != bindparam("order"),
        _ORDERS.c.placed_at.is_not(None),
        # Not an IN list: that is rendered anew on every execution.
        _ORDERS.c.status != OrderStatus.CANCELLED,
        _ORDERS.c.status != OrderStatus.REFUNDED,
    )
    .order_by(_ORDERS.c.placed_at.desc())
    .limit(PAST_ORDERS)
    .subquery()
)
# The latest orders and their items in one round trip (an order without items still shows).
_PAST_ORDERS = (
    select(_PAST.c.id, _PAST.c.placed_at, OrderItem)
    .outerjoin_from(_PAST, OrderItem, OrderItem.order_id == _PAST.c.id)
    .outerjoin(Product, Product.id == OrderItem.catalog_product_id)
    .options(contains_eager(OrderItem.catalog_product))
    .order_by(_PAST.c.placed_at.desc(), _PAST.c.id, OrderItem.position)
)
_LATEST_GAPS = (
    select(_GAPS.c.log_days)
    .where(_GAPS.c.rule_id == bindparam("rule"))
    .order_by(_GAPS.c.id.desc())
    .limit(GAPS_PER_RULE)
    .subquery()
)
_GAP_STATS = select(func.count(), func.sum(_LATEST_GAPS.c.log_days))
_ADD_ITEMS = core_insert(_ITEMS).returning(*_ITEMS.c)
_CUSTOMERS = cast(Table, Customer.__table__)
# The customer with the shop's id first, else the oldest living one with the address.
_BY_ID = select(_CUSTOMERS.c.id, _CUSTOMERS.c.external_id).where(
    _CUSTOMERS.c.shop == bindparam("shop"), _CUSTOMERS.c.external_id == bindparam("external_id")
)
# By id, else by address: two index lookups joined, never one condition with OR across the
# two columns, which PostgreSQL plans as a scan of every customer of the shop whenever its
# statistics lag behind (a table that grew since it was last analyzed).
_PERSON = union_all(
    select(_CUSTOMERS.c.id, _CUSTOMERS.c.external_id, literal(0).label("rank")).where(
        _CUSTOMERS.c.shop == bindparam("shop"),
        _CUSTOMERS.c.external_id == bindparam("external_id"),
    ),
    select(_CUSTOMERS.c.id, _CUSTOMERS.c.external_id, literal(1).label("rank")).where(
        _CUSTOMERS.c.shop == bindparam("shop"),
        _CUSTOMERS.c.email == bindparam("email"),
        _CUSTOMERS.c.deleted_at.is_(None),
    ),
).subquery("person")
_BY_ID_OR_EMAIL = (
    select(_PERSON.c.id, _PERSON.c.external_id).order_by(_PERSON.c.rank, _PERSON.c.id).limit(1)
)
_ERASURES = cast(Table, Erasure.__table__)
# What intake asks about the person of an event before it stores anything, in one round
# trip: when they were last erased, whether their address is suppressed, and their row
# (`find_person`; with no address the e-mail comparison matches nothing).
_SCREEN = select(
    select(func.max(_ERASURES.c.erased_at))
    .where(
        _ERASURES.c.shop == bindparam("shop"),
        _ERASURES.c.subject.in_([bindparam("by_id"), bindparam("by_email")]),
    )
    .scalar_subquery()
    .label("erased_at"),
    _SUPPRESSED.exists().label("suppressed"),
    _BY_ID_OR_EMAIL.with_only_columns(_PERSON.c.id).scalar_subquery().label("person_id"),
    _BY_ID_OR_EMAIL.with_only_columns(_PERSON.c.external_id)
    .scalar_subquery()
    .label("person_external_id"),
)
_ADOPT_ID = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer"))
    .values(external_id=bindparam("new_id"))
)


@lru_cache(maxsize=256)
def _upsert_statements(
    insert: Any,
    entity: type[Customer | Order],
    keys: tuple[str, ...],
    updated: tuple[str, ...],
    newer_only: bool,
) -> tuple[Any, Any]:
    """INSERT .. ON CONFLICT DO NOTHING, and INSERT .. ON CONFLICT DO UPDATE of `updated`,
    of a row keyed by (shop, external_id) whose values are `keys`, each loading the row as
    its ORM entity. Cached by the shape of the values (a few in practice): a Core statement
    built once costs a fraction of an ORM-enabled INSERT built on every call.
    `newer_only`: update only a row whose source_updated_at is not newer than the new one.
    """
    table = cast(Table, entity.__table__)
    columns = table.c
    values: dict[str, Any] = {key: bindparam(key, type_=columns[key].type) for key in keys}
    statement = insert(table).values(values | {"created_at": func.now(), "updated_at": func.now()})
    conflict = ["shop", "external_id"]
    create = statement.on_conflict_do_nothing(index_elements=conflict).returning(*columns)
    excluded = statement.excluded
    changes: dict[str, Any] = {key: excluded[key] for key in updated}
    if "marketing_consent" in changes:
        # A customer who unsubscribed through our link stays unsubscribed, whatever the
        # shop's own flag still says, until they resubscribe themselves.
        changes["marketing_consent"] = case(
            (columns.marketing_opt_out_at.is_(None), excluded.marketing_consent), else_=False
        )
    if newer_only:
        changes |= {"deleted_at": None}
    upsert = statement.on_conflict_do_update(
        index_elements=conflict,
        set_=changes | {"updated_at": func.now()},
        where=columns.source_updated_at <= excluded.source_updated_at if newer_only else None,
    ).returning(*columns)
    return (
        select(entity).from_statement(create),
        select(entity).from_statement(upsert),
    )


@cache
def _record_delivery_statement(insert: Any) -> Any:
    """The delivery insert for a dialect's INSERT construct (see `dialect_insert`)."""
    return (
        insert(_DELIVERIES)
        .on_conflict_do_nothing(index_elements=["source", "shop", "delivery_id"])
        .returning(_DELIVERIES.c.id)
    )


async def record_delivery(
    session: AsyncSession | AsyncConnection,
    *,
    source: str,
    shop: str,
    delivery_id: str,
    event_type: str,
    body: str,
    received_at: datetime | None = None,
    queued: bool = False,
) -> int | None:
    """Insert the delivery once and return its row id; None when it was seen before (or is
    being stored right now: the unique key makes a concurrent copy wait for the first and
    then do nothing)."""
    statement = _record_delivery_statement(dialect_insert(session))
    row = {
        "source": source,
        "shop": shop,
        "delivery_id": delivery_id,
        "event_type": event_type[:EVENT_TYPE_LENGTH],
        "body": body,
        "received_at": received_at or utcnow(),
        "queued": queued,
    }
    return (await session.execute(statement, row)).scalar_one_or_none()


async def record_delivery_at_once(
    sessions: async_sessionmaker[AsyncSession], **fields: Any
) -> int | None:
    """As `record_delivery`, committed at once on a connection of its own: one statement in
    autocommit, without BEGIN, COMMIT or an ORM session (queued intake: the request's only
    write). Under load each round trip waits a turn of a busy event loop while it holds a
    pooled connection; three of them held connections long enough to drain the pool."""
    async with engine_of(sessions).connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return await record_delivery(connection, **fields)


async def link_delivery(session: AsyncSession, *, delivery_id: int, customer_id: int) -> None:
    await session.execute(_LINK_DELIVERY, {"delivery": delivery_id, "customer": customer_id})


def normalized_email(email: str | None) -> str | None:
    """How addresses are stored and compared: trimmed, lower-cased."""
    return (email.strip().lower() or None) if email else None


def is_guest_id(external_id: str) -> bool:
    """An id we derived from an address (a checkout without an account, an import without
    customer ids), not one the shop gave."""
    return external_id.startswith(GUEST_PREFIX)


async def find_person(
    session: AsyncSession, *, shop: str, external_id: str, email: str | None
) -> tuple[int, str] | None:
    """(row id, external id) of the shop's customer with this id, else of the one with this
    address (not erased, the oldest): one customer per person, whichever way they came."""
    address = normalized_email(email)
    if address is None:
        statement = _BY_ID
        params: dict[str, Any] = {"shop": shop, "external_id": external_id}
    else:
        statement = _BY_ID_OR_EMAIL
        params = {"shop": shop, "external_id": external_id, "email": address}
    row = (await session.execute(statement, params)).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def upsert_customer(
    session: AsyncSession,
    *,
    shop: str,
    external_id: str,
    values: dict[str, Any],
    as_of: datetime,
    looked_up: Screened | None = None,
) -> tuple[Customer, bool]:
    """Create or update the person's customer (see `find_person`); an event older than the
    last one applied changes nothing.

    Found by address under a guest id, the customer takes the shop's id the event brings
    (they made an account); found under the shop's id, a guest checkout joins it as it is.
    Returns the customer as stored and whether this call created it: a customer created in
    this transaction has no orders, mail or history yet, so those need not be looked up.
    `looked_up`: the person as `screen_person` found them earlier in this transaction.
    """
    if (
        looked_up is not None
        and looked_up.external_id == external_id
        and looked_up.email == values.get("email")
    ):
        found = looked_up.person  # the caller vouches nothing wrote customers since
    else:
        found = await find_person(
            session, shop=shop, external_id=external_id, email=values.get("email")
        )
    if found is not None and found[1] != external_id:
        row_id, known_as = found
        if is_guest_id(known_as) and not is_guest_id(external_id):
            await session.execute(_ADOPT_ID, {"customer": row_id, "new_id": external_id})
        else:
            external_id = known_as
    row = {**values, "shop": shop, "external_id": external_id, "source_updated_at": as_of}
    create, upsert = _upsert_statements(
        dialect_insert(session),
        Customer,
        tuple(sorted(row)),
        (*sorted(values), "source_updated_at"),
        newer_only=True,
    )
    if found is None:
        # A new customer costs one insert and is known to be new (a concurrent copy waits for
        # the first one's commit, then inserts nothing and updates below).
        created = (await session.execute(create, row)).scalar_one_or_none()
        if created is not None:
            return created, True
    # Changed only if this event is not older than the last one applied.
    customer = (await session.execute(upsert, row, execution_options=_FRESH)).scalar_one_or_none()
    if customer is None:
        customer = (
            await session.execute(
                select(Customer).where(Customer.shop == shop, Customer.external_id == external_id),
                execution_options=_FRESH,
            )
        ).scalar_one()
    return customer, False


async def customer_id_for(
    session: AsyncSession, *, shop: str, external_id: str, email: str | None = None
) -> int | None:
    found = await find_person(session, shop=shop, external_id=external_id, email=email)
    return None if found is None else found[0]


async def upsert_order(
    session: AsyncSession, *, shop: str, external_id: str, values: dict[str, Any]
) -> tuple[Order, bool]:
    """Create the order, or fill in one that exists (perhaps as a bare cancellation).

    Returns the order as stored and whether this call created it (then it has no items and
    no conversion yet).
    """
    row = {**values, "shop": shop, "external_id": external_id}
    create, upsert = _upsert_statements(
        dialect_insert(session),
        Order,
        tuple(sorted(row)),
        tuple(sorted(values)),
        newer_only=False,
    )
    # As for customers: a new order (nearly all) costs one statement and is known new.
    created = (await session.execute(create, row)).scalar_one_or_none()
    if created is not None:
        return created, True
    return (await session.execute(upsert, row, execution_options=_FRESH)).scalar_one(), False


async def ensure_order(session: AsyncSession, *, shop: str, external_id: str) -> Order:
    """The order row, created bare when an event about it comes before the order itself."""
    insert = dialect_insert(session)
    await session.execute(
        insert(Order)
        .values(
            shop=shop,
            external_id=external_id,
            status="open",
            created_at=func.now(),
            updated_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["shop", "external_id"])
    )
    statement = (
        select(Order).where(Order.shop == shop, Order.external_id == external_id).with_for_update()
    )
    return (await session.execute(statement)).scalar_one()


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    statement = select(Customer).where(Customer.id == customer_id)
    return (await session.execute(statement)).scalar_one()


async def order_has_items(session: AsyncSession, order_id: int) -> bool:
    statement = select(OrderItem.id).where(OrderItem.order_id == order_id).limit(1)
    return (await session.execute(statement)).first() is not None


async def add_items(
    session: AsyncSession,
    order_id: int,
    items: Sequence[dict[str, Any]],
    products: Sequence[Product | None] = (),
) -> list[OrderItem]:
    """Insert the order's items in one statement; returns them as stored, by position (so
    they need not be read back), each with its catalog product (`products`, by position)."""
    if not items:
        return []
    rows = [
        {**item, "order_id": order_id, "position": position} for position, item in enumerate(items)
    ]
    # A Core executemany: the ORM's bulk INSERT costs more CPU than the database does. The
    # items are only read here (rule facts), so they are built, not loaded into the session.
    stored = (await session.execute(_ADD_ITEMS, rows)).all()
    built = sorted((OrderItem(**row._mapping) for row in stored), key=lambda item: item.position)
    for item in built:
        item.catalog_product = products[item.position] if item.position < len(products) else None
    return built


async def order_items(session: AsyncSession, order_id: int) -> Sequence[OrderItem]:
    statement = (
        select(OrderItem)
        .where(OrderItem.order_id == order_id)
        .options(with_products())
        .order_by(OrderItem.position)
        # Links written by UPDATE (a product that arrived late) replace what the session holds.
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


async def count_earlier_orders(
    session: AsyncSession, *, customer_id: int, order_id: int, placed_at: datetime | None
) -> int:
    """Orders of this customer placed before this one (cancelled ones count: they were orders)."""
    params: dict[str, Any] = {"customer": customer_id, "order": order_id}
    if placed_at is None:
        return int((await session.execute(_OTHER_ORDERS, params)).scalar_one())
    params["placed_at"] = placed_at
    return int((await session.execute(_EARLIER_ORDERS, params)).scalar_one())


async def past_orders(
    session: AsyncSession, *, customer_id: int, before_order_id: int
) -> list[PastOrder]:
    """The customer's latest orders other than this one, that were not cancelled or refunded."""
    rows = await session.execute(_PAST_ORDERS, {"customer": customer_id, "order": before_order_id})
    orders: dict[int, tuple[datetime, list[OrderItem]]] = {}  # latest first
    for order_id, placed_at, item in rows:
        _, items = orders.setdefault(order_id, (placed_at, []))
        if item is not None:
            items.append(item)
    return [
        PastOrder(placed_at=placed_at, items=tuple(item.facts() for item in items))
        for placed_at, items in orders.values()
    ]


async def product_gap_stats(session: AsyncSession, rule_ids: Sequence[str]) -> dict[str, GapStats]:
    stats = {}
    for rule_id in rule_ids:
        count, total = (await session.execute(_GAP_STATS, {"rule": rule_id})).one()
        stats[rule_id] = GapStats(count=int(count), sum_log_days=float(total or 0.0))
    return stats


async def record_gap(
    session: AsyncSession,
    *,
    rule_id: str,
    customer_id: int,
    order_id: int,
    log_days: float,
    observed_at: datetime,
) -> None:
    insert = dialect_insert(session)
    await session.execute(
        insert(RepurchaseGap)
        .values(
            rule_id=rule_id,
            customer_id=customer_id,
            order_id=order_id,
            log_days=log_days,
            observed_at=observed_at,
        )
        .on_conflict_do_nothing(index_elements=["rule_id", "order_id"])
    )


async def is_suppressed(session: AsyncSession, email: str) -> bool:
    keys = {"address": email.lower(), "digest": email_digest(email)}
    return (await session.execute(_SUPPRESSED, keys)).first() is not None


@dataclass(frozen=True)
class Screened:
    """What intake learned about an event's person in one statement, before storing
    anything (`screen_person`)."""

    external_id: str
    email: str | None  # lower-cased, as stored
    erased_at: datetime | None  # when the shop last erased them; None: never
    suppressed: bool | None  # as `is_suppressed`; None without an address
    person: tuple[int, str] | None  # as `find_person` answers


async def screen_person(
    session: AsyncSession, *, shop: str, external_id: str, email: str | None
) -> Screened:
    """When the shop last erased the person with this id or address, whether the address is
    suppressed, and the person's customer row: one statement. `email` lower-cased."""
    row = (
        await session.execute(
            _SCREEN,
            {
                "shop": shop,
                "by_id": id_subject(external_id),
                "by_email": email_digest(email) if email else None,
                "address": email,
                "digest": email_digest(email) if email else None,
                "external_id": external_id,
                "email": email,
            },
        )
    ).one()
    return Screened(
        external_id=external_id,
        email=email,
        erased_at=row.erased_at,
        suppressed=bool(row.suppressed) if email else None,
        person=None if row.person_id is None else (int(row.person_id), str(row.person_external_id)),
    )


async def customer_totals(
    session: AsyncSession, *, customer_id: int
) -> tuple[int, dict[str, Decimal]]:
    """The customer's standing orders (placed, not cancelled or refunded): how many, and
    their totals per currency. One statement."""
    rows = await session.execute(
        select(Order.currency, func.count(), func.sum(Order.total))
        .where(
            Order.customer_id == customer_id,
            Order.placed_at.is_not(None),
            Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        )
        .group_by(Order.currency)
    )
    count, spent = 0, {}
    for currency, orders, total in rows:
        count += int(orders)
        if currency is not None and total is not None:
            spent[currency] = Decimal(str(total))
    return count, spent


async def standing_orders(session: AsyncSession, *, customer_id: int) -> Sequence[Order]:
    """The customer's orders that were placed and not cancelled or refunded."""
    statement = (
        select(Order)
        .where(
            Order.customer_id == customer_id,
            Order.placed_at.is_not(None),
            Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        )
        .order_by(Order.placed_at)
    )
    return (await session.execute(statement)).scalars().all()


async def order_customer_id(session: AsyncSession, *, shop: str, external_id: str) -> int | None:
    statement = select(Order.customer_id).where(
        Order.shop == shop, Order.external_id == external_id
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def order_of_erased_customer(session: AsyncSession, *, shop: str, external_id: str) -> bool:
    statement = (
        select(Order.id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(
            Order.shop == shop, Order.external_id == external_id, Customer.deleted_at.is_not(None)
        )
    )
    return (await session.execute(statement)).first() is not None


async def blank_delivery(session: AsyncSession, *, delivery: int) -> None:
    """Keep a delivery's id (dedupe needs it), not its body."""
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery)
        .values(body="")
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class UnlinkedItem:
    id: int
    order_id: int
    product_ref: str | None
    variant_ref: str | None
    sku: str | None


# Values per IN list: far below either database's limit on parameters.
_KEY_CHUNK = 500


async def unlinked_items(
    session: AsyncSession,
    *,
    shop: str,
    placed_since: datetime,
    product_ids: Collection[str],
    variant_ids: Collection[str],
    skus: Collection[str],
) -> list[UnlinkedItem]:
    """Items of the shop's orders placed since then, with no catalog product yet, that name
    one of these product ids, variant ids or SKUs (on their indexes)."""
    found: dict[int, UnlinkedItem] = {}
    for column, values in (
        (OrderItem.product_ref, product_ids),
        (OrderItem.variant_ref, variant_ids),
        (OrderItem.sku, skus),
    ):
        ordered = sorted(set(values))
        for start in range(0, len(ordered), _KEY_CHUNK):
            rows = await session.execute(
                select(
                    OrderItem.id,
                    OrderItem.order_id,
                    OrderItem.product_ref,
                    OrderItem.variant_ref,
                    OrderItem.sku,
                )
                .join(Order, Order.id == OrderItem.order_id)
                .where(
                    column.in_(ordered[start : start + _KEY_CHUNK]),
                    OrderItem.catalog_product_id.is_(None),
                    Order.shop == shop,
                    Order.placed_at >= placed_since,
                )
            )
            for row in rows:
                found.setdefault(row.id, UnlinkedItem(*row))
    return sorted(found.values(), key=lambda item: item.id)


_LINK_ITEM = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item"), _ITEMS.c.catalog_product_id.is_(None))
    .values(catalog_product_id=bindparam("product"), catalog_variant_id=bindparam("variant"))
)


async def link_items(session: AsyncSession, links: Sequence[tuple[int, int, int | None]]) -> None:
    """Set each (item, product, variant) link, unless another delivery set one first."""
    if links:
        await session.execute(
            _LINK_ITEM,
            [
                {"item": item, "product": product, "variant": variant}
                for item, product, variant in links
            ],
        )


async def get_orders(session: AsyncSession, order_ids: Collection[int]) -> Sequence[Order]:
    statement = select(Order).where(Order.id.in_(sorted(set(order_ids)))).order_by(Order.id)
    return (await session.execute(statement)).scalars().all()


async def orders_linked_to(
    session: AsyncSession, *, product_ids: Collection[int], placed_since: datetime
) -> set[int]:
    """Orders placed since then with an item linked to one of these catalog products."""
    found: set[int] = set()
    ordered = sorted(set(product_ids))
    for start in range(0, len(ordered), _KEY_CHUNK):
        rows = await session.execute(
            select(Order.id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(
                OrderItem.catalog_product_id.in_(ordered[start : start + _KEY_CHUNK]),
                Order.placed_at >= placed_since,
            )
            .distinct()
        )
        found.update(rows.scalars())
    return found


async def latest_order_of(
    session: AsyncSession, *, email: str | None = None, number: str | None = None
) -> tuple[Customer, Order, Sequence[OrderItem]] | None:
    """The latest order with items of the (not erased) customer with this address, or the
    order with this number or shop id: with its customer and items; None when none is found.
    A console preview renders a rule's mail with them."""
    statement = (
        select(Customer, Order)
        .join(Order, Order.customer_id == Customer.id)
        .where(
            Customer.deleted_at.is_(None),
            select(OrderItem.id).where(OrderItem.order_id == Order.id).exists(),
        )
        .order_by(Order.placed_at.desc().nulls_last(), Order.id.desc())
        .limit(1)
    )
    if email is not None:
        statement = statement.where(Customer.email == normalized_email(email))
    elif number is not None:
        wanted = number.lstrip("#").strip()
        statement = statement.where((Order.number == wanted) | (Order.external_id == wanted))
    else:
        return None
    row = (await session.execute(statement)).first()
    if row is None:
        return None
    customer, order = row
    return customer, order, await order_items(session, order.id)
