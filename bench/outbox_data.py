"""Outbox rows for the dispatch and claim benchmarks, written in bulk, as intake stores them.

The benchmarks measure sending and claiming, not intake, so customers, orders, items and
planned messages are inserted directly, with the columns intake fills
(`app/orders/repository.py`: upsert_customer, upsert_order, add_items;
`app/outbox/planned.py`: insert_planned) and the shipped rules' ids, versions, templates,
kinds and expiries. Every order gets the transactional thank-you and the restock or
cross-sell mail its items call for.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Table, delete, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import ROOT
from app.models import (
    Customer,
    Message,
    MessageAttempt,
    MessageStatus,
    Order,
    OrderItem,
    TrackedLink,
)
from app.planner.planner import order_dedupe_key
from app.rules.loader import RuleSet
from app.rules.source import RulesSource

SHOP = "default"  # what our own webhook stores as the shop
# The marketing rule an order's main items call for, and what such an order holds.
FAMILIES: dict[str, list[tuple[str, str, str, str]]] = {
    "diapers-restock": [
        ("DIAPER-M-60", "Diapers M, 60 pcs", "baby/diapers", "24.90"),
        ("DIAPER-L-52", "Diapers L, 52 pcs", "baby/diapers", "26.90"),
        ("FOOD-APPLE-6", "Apple puree, 6 jars", "baby/food", "7.50"),
    ],
    "cartridges-restock": [
        ("CART-BK-12", "Black cartridge", "office/cartridges", "39.00"),
        ("CART-CMY-3", "Colour cartridges, 3 pcs", "office/cartridges", "54.00"),
    ],
    "coffee-next-variety": [
        ("BEANS-ETH-250", "Ethiopia beans 250 g", "coffee/beans", "12.90"),
        ("GROUND-COL-500", "Colombia ground 500 g", "coffee/ground", "15.40"),
    ],
}
EXTRAS = [
    ("SOCKS-3", "Socks, 3 pairs", "clothes", "9.90"),
    ("PAPER-A4-500", "Paper A4, 500 sheets", "office/paper", "6.20"),
    ("MUG-WHITE", "White mug", "kitchen", "8.00"),
]
FIRST_NAMES = ["Anna", "Jonas", "Maria", "Luca", "Sofia", "Ivan", "Emma", "Noah", "Olga", None]
LAST_NAMES = ["Müller", "Rossi", "Petrova", "Smith", "García", "Novák", None]
ZONES = ["Europe/Berlin", "Europe/Moscow", "America/New_York", "UTC"]


def load_rules() -> RuleSet:
    source = RulesSource(ROOT / "rules")
    if not source.reload():
        raise RuntimeError(f"the shipped rules do not load: {source.errors}")
    return source.current


@dataclass
class Rows:
    customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def orders_with_messages(
    messages: int,
    *,
    due: datetime,
    spread: timedelta,
    rules: RuleSet,
    rng: random.Random,
    first_id: int = 1,
) -> Rows:
    """`messages` planned messages (two per order: thank-you and the family's rule), with
    their customers, orders and 1 to 3 items each; each falls due in [due - spread, due].

    A third of the customers have an earlier order, so rebuy checks have history to read.
    Ids start at `first_id` in every table.
    """
    rows = Rows()
    orders = (messages + 1) // 2
    next_order_id = first_id
    for index in range(orders):
        customer_id = first_id + index
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        send_at = due - spread * rng.random()
        placed_at = send_at - timedelta(days=rng.randrange(7, 14), minutes=rng.randrange(600))
        rows.customers.append(
            {
                "id": customer_id,
                "shop": SHOP,
                "external_id": f"c-{customer_id}",
                "email": f"customer{customer_id}@example.org",
                "first_name": first,
                "last_name": last,
                "locale": rng.choice(["en", "en", "ru", "en-GB"]),
                "time_zone": rng.choice(ZONES),
                "country": rng.choice(["DE", "RU", "US", "GB"]),
                "tags": [],
                "attributes": {},
                "marketing_consent": True,
                "source_updated_at": placed_at,
                "created_at": placed_at,
                "updated_at": placed_at,
            }
        )
        family = rng.choice(list(FAMILIES))
        if rng.random() < 1 / 3:  # an earlier order, before this one: history, not a rebuy
            earlier = placed_at - timedelta(days=rng.randrange(30, 300))
            _add_order(rows, next_order_id, customer_id, family, earlier, rng)
            next_order_id += 1
        order_id = next_order_id
        next_order_id += 1
        _add_order(rows, order_id, customer_id, family, placed_at, rng)
        for rule_id in ("thank-you", family)[: min(2, messages - 2 * index)]:
            rule = rules.by_id(rule_id)
            assert rule is not None, rule_id
            expiry = rule.send.expiry
            rows.messages.append(
                {
                    "id": first_id + len(rows.messages),
                    "customer_id": customer_id,
                    "order_id": order_id,
                    "rule_id": rule.id,
                    "rule_version": rule.version,
                    "template": rule.template,
                    "kind": rule.kind,
                    "variant": None,
                    "dedupe_key": order_dedupe_key(
                        rule.id, order_id=order_id, customer_id=customer_id
                    ),
                    "status": MessageStatus.SCHEDULED,
                    "send_at": send_at,
                    "expires_at": expiry.add_to(send_at) if expiry else None,
                    "next_attempt_at": send_at,
                    "attempts": 0,
                    "created_at": placed_at,
                    "updated_at": placed_at,
                }
            )
    return rows


def _add_order(
    rows: Rows,
    order_id: int,
    customer_id: int,
    family: str,
    placed_at: datetime,
    rng: random.Random,
) -> None:
    count = rng.randint(1, 3)
    lines = [rng.choice(FAMILIES[family])]
    while len(lines) < count:
        line = rng.choice(FAMILIES[family] + EXTRAS)
        if line not in lines:
            lines.append(line)
    total = Decimal(0)
    for position, (sku, name, category, price) in enumerate(lines):
        quantity = rng.randint(1, 3)
        total += Decimal(price) * quantity
        rows.items.append(
            {
                "order_id": order_id,
                "position": position,
                "sku": sku,
                "name": name,
                "category": category,
                "tags": [],
                "quantity": quantity,
                "unit_price": Decimal(price),
                "attributes": {},
            }
        )
    rows.orders.append(
        {
            "id": order_id,
            "shop": SHOP,
            "external_id": str(820982911946154508 + order_id),
            "customer_id": customer_id,
            "email": f"customer{customer_id}@example.org",
            "currency": "EUR",
            "total": total,
            "status": "open",
            "placed_at": placed_at,
            "refunds": [],
            "discount_codes": [],
            "attributes": {},
            "created_at": placed_at,
            "updated_at": placed_at,
        }
    )


def chunks(rows: Iterable[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    part: list[dict[str, Any]] = []
    for row in rows:
        part.append(row)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


async def insert_rows(
    connection: AsyncConnection, table: Table, rows: Iterable[dict[str, Any]]
) -> None:
    """Insert in chunks; on PostgreSQL with COPY (asyncpg), which is many times faster."""
    if connection.dialect.name != "postgresql":
        for part in chunks(rows):
            await connection.execute(insert(table), part)
        return
    as_json = {column.name for column in table.columns if isinstance(column.type, JSON)}
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    for part in chunks(rows, 50_000):
        # The columns the rows give; the others take their database defaults (ids).
        columns = [column.name for column in table.columns if column.name in part[0]]
        records = [
            tuple(json.dumps(row[name]) if name in as_json else row[name] for name in columns)
            for row in part
        ]
        await driver.copy_records_to_table(table.name, records=records, columns=columns)


async def insert_all(engine: AsyncEngine, rows: Rows) -> None:
    async with engine.begin() as connection:
        for model, part in (
            (Customer, rows.customers),
            (Order, rows.orders),
            (OrderItem, rows.items),
            (Message, rows.messages),
        ):
            await insert_rows(connection, model.__table__, part)  # type: ignore[arg-type]
        await catch_up_sequences(connection)


async def catch_up_sequences(connection: AsyncConnection) -> None:
    """Rows inserted with their own ids leave PostgreSQL's sequences behind: move them on,
    so rows the service adds later (a worker's jobs) get fresh ids."""
    if connection.dialect.name != "postgresql":
        return
    for table in ("customers", "orders", "order_items", "messages"):
        await connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        )


async def reset_schema(engine: AsyncEngine, schema: str = "public") -> None:
    """An empty database at the latest migration (PostgreSQL: `schema` is dropped and made
    again; the engine's search_path must name it)."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await connection.execute(text(f"CREATE SCHEMA {schema}"))
        await connection.run_sync(_upgrade)


def _upgrade(connection: Any) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def make_due_again(engine: AsyncEngine, ids: Sequence[int] | None = None) -> None:
    """Put messages back as planned (due at their send_at), forgetting any sending."""
    async with engine.begin() as connection:
        where = [Message.id.in_(ids)] if ids is not None else []
        await connection.execute(
            update(Message)
            .where(*where)
            .values(
                status=MessageStatus.SCHEDULED,
                status_reason=None,
                next_attempt_at=Message.send_at,
                attempts=0,
                claimed_by=None,
                recipient=None,
                smtp_message_id=None,
                sent_at=None,
                last_error=None,
            )
        )
        for model in (MessageAttempt, TrackedLink):
            statement = delete(model)
            if ids is not None:
                statement = statement.where(model.message_id.in_(ids))
            await connection.execute(statement)
