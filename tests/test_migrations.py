"""The schema comes from alembic alone, and it matches the models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, insert, table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import ROOT
from app.db import Base, create_engine
from app.stats.tally import COUNTERS, MessageTally


async def test_models_and_migrations_agree(migrated_engine: AsyncEngine) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with migrated_engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert _without_inline_sqlite_keys(differences) == []


def _key(constraint: Any) -> tuple[str, tuple[str, ...], str]:
    return (
        constraint.table.name,
        tuple(column.name for column in constraint.columns),
        constraint.referred_table.name,
    )


def _without_inline_sqlite_keys(differences: list[Any]) -> list[Any]:
    """SQLite adds a foreign key to an existing table only on its column (`ALTER TABLE ...
    ADD COLUMN x REFERENCES t (id) ON DELETE SET NULL`, as 0018 does: a table copy would
    cascade deletes), and SQLAlchemy reflects such a key without its name and ON DELETE. The
    key is there all the same: a removal and an addition of one key on the same columns are
    no difference."""
    removed = {_key(d[1]) for d in differences if d[0] == "remove_fk" and d[1].name is None}
    added = {_key(d[1]) for d in differences if d[0] == "add_fk"}
    same = removed & added
    return [d for d in differences if not (d[0] in ("remove_fk", "add_fk") and _key(d[1]) in same)]


# --- 0012: one customer per person ---------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHOP = "baby-goods.myshopify.com"
GUEST = "guest:0b6f3c1d2e4a5b69788796a5b4c3d2e1"  # as `aftersale import` keyed Anna


def _upgrade(sync_connection: Any, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = sync_connection
    command.upgrade(config, revision)


@pytest.fixture
async def scratch(database_url: str, tmp_path: Path) -> AsyncIterator[AsyncConnection]:
    """A connection to an empty database of the test's own: a file on SQLite, a schema of
    its own on PostgreSQL (the shared one stays at head)."""
    if database_url.startswith("sqlite"):
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'split.db'}")
    else:
        engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text("DROP SCHEMA IF EXISTS split_history CASCADE"))
                await connection.execute(text("CREATE SCHEMA split_history"))
                await connection.execute(text("SET search_path TO split_history"))
            yield connection
            if connection.dialect.name == "postgresql":
                await connection.rollback()
                await connection.execute(text("DROP SCHEMA IF EXISTS split_history CASCADE"))
                await connection.commit()
    finally:
        await engine.dispose()


_JSON = {"tags", "attributes", "refunds", "discount_codes", "category_paths"}


def _row(table_name: str, /, **values: Any) -> Any:
    """An INSERT of exactly these columns (the models have more now than at 0010)."""
    columns = [column(key, JSON if key in _JSON else None) for key in values]
    return insert(table(table_name, *columns)).values(**values)


async def _seed_split_history(connection: AsyncConnection) -> None:
    """At 0010: Anna imported from a CSV (a guest id, two orders, one learned gap) and again
    from a live webhook under her account's id (one order, a planned message); Boris only as
    a guest; and another shop's Anna, who is another customer."""
    stamps = {"created_at": NOW, "updated_at": NOW}
    customer = {"tags": [], "attributes": {}, "source_updated_at": NOW, **stamps}
    people = [
        (1, SHOP, GUEST, " Anna.Ivanova@example.org"),
        (2, SHOP, "115310627314723954", "anna.ivanova@example.org"),
        (3, SHOP, "guest:b0415b0415b0415b0415b0415b0415b0", "boris@example.org"),
        (
            4,
            "tea-house.myshopify.com",
            "guest:0b6f3c1d2e4a5b69788796a5b4c3d2e1",
            "anna.ivanova@example.org",
        ),
        (5, "tea-house.myshopify.com", "8812", "anna.ivanova@example.org"),
    ]
    for row_id, shop, external_id, email in people:
        await connection.execute(
            _row(
                "customers",
                id=row_id,
                shop=shop,
                external_id=external_id,
                email=email,
                marketing_consent=True,
                **customer,
            )
        )
    order = {"status": "open", "refunds": [], "discount_codes": [], **stamps}
    for row_id, owner, external_id in [
        (10, 1, "5678901234501"),
        (11, 1, "5678901234503"),
        (12, 2, "820982911946154508"),
        (13, 3, "5678901234502"),
    ]:
        await connection.execute(
            _row(
                "orders",
                id=row_id,
                shop=SHOP,
                external_id=external_id,
                customer_id=owner,
                placed_at=NOW,
                **order,
            )
        )
    await connection.execute(
        _row(
            "repurchase_gaps",
            id=20,
            rule_id="diapers",
            customer_id=1,
            order_id=11,
            log_days=3.3,
            observed_at=NOW,
        )
    )
    message = {
        "rule_version": "v1",
        "template": "thank-you",
        "kind": "transactional",
        "status": "scheduled",
        "send_at": NOW,
        "next_attempt_at": NOW,
        "attempts": 0,
        **stamps,
    }
    for row_id, owner, order_id, key in [
        (30, 1, 10, "thanks:order:10:customer:1"),
        (31, 1, None, "birthday:birthday:2027:customer:1"),
        (32, 2, None, "birthday:birthday:2027:customer:2"),
        (33, 1, 11, "school:order:11:customer:1:anchor:2027-09-01"),
    ]:
        await connection.execute(
            _row(
                "messages",
                id=row_id,
                customer_id=owner,
                order_id=order_id,
                rule_id=key.split(":")[0],
                dedupe_key=key,
                **message,
            )
        )
    await connection.execute(
        _row(
            "webhook_deliveries",
            id=40,
            source="import",
            shop=SHOP,
            delivery_id="shopify-csv:#1001",
            event_type="order.created",
            body="Name,Email\n#1001,anna.ivanova@example.org\n",
            received_at=NOW,
            customer_id=1,
        )
    )


async def test_the_migration_merges_an_imported_guest_into_the_account(
    scratch: AsyncConnection,
) -> None:
    await scratch.run_sync(_upgrade, "0010")
    await _seed_split_history(scratch)
    await scratch.run_sync(_upgrade, "0012")

    async def rows(statement: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await scratch.execute(text(statement))]

    assert await rows("SELECT id, shop, external_id FROM customers ORDER BY id") == [
        (2, SHOP, "115310627314723954"),
        (3, SHOP, "guest:b0415b0415b0415b0415b0415b0415b0"),  # nobody to merge with
        (5, "tea-house.myshopify.com", "8812"),  # that shop's Anna: merged there, not here
    ]
    assert await rows("SELECT id, customer_id FROM orders ORDER BY id") == [
        (10, 2),
        (11, 2),
        (12, 2),
        (13, 3),
    ]
    assert await rows("SELECT customer_id FROM repurchase_gaps") == [(2,)]
    assert await rows("SELECT customer_id FROM webhook_deliveries") == [(2,)]
    assert await rows(
        "SELECT id, customer_id, dedupe_key, status, status_reason FROM messages ORDER BY id"
    ) == [
        (30, 2, "thanks:order:10:customer:2", "scheduled", None),
        # The same birthday mail both had: once is enough.
        (31, 2, "birthday:birthday:2027:customer:1", "cancelled", "customer_merged"),
        (32, 2, "birthday:birthday:2027:customer:2", "scheduled", None),
        (33, 2, "school:order:11:customer:2:anchor:2027-09-01", "scheduled", None),
    ]


# --- 0018: order items' product ids and catalog link -----------------------------------------


async def test_order_items_gain_their_product_ids_and_keep_every_row(
    scratch: AsyncConnection,
) -> None:
    await scratch.run_sync(_upgrade, "0010")
    await _seed_split_history(scratch)
    await scratch.run_sync(_upgrade, "0012")
    item = {"tags": [], "attributes": {}, "quantity": 1, "name": "Windeln Größe 4"}
    for row_id, order_id in [(50, 10), (51, 12)]:
        await scratch.execute(
            _row("order_items", id=row_id, order_id=order_id, position=0, sku="D-4", **item)
        )
    await scratch.run_sync(_upgrade, "0018")

    async def rows(statement: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await scratch.execute(text(statement))]

    # Added in place: nothing that points at orders or items was copied or cascaded away.
    assert await rows(
        "SELECT id, order_id, product_ref, variant_ref, catalog_product_id, catalog_variant_id"
        " FROM order_items ORDER BY id"
    ) == [(50, 10, None, None, None, None), (51, 12, None, None, None, None)]
    assert await rows("SELECT count(*) FROM repurchase_gaps") == [(1,)]
    # The link is a foreign key on both databases: a removed product unlinks its items.
    stamps = {"created_at": NOW, "updated_at": NOW}
    await scratch.execute(
        _row(
            "products",
            id=60,
            shop=SHOP,
            platform="shopify",
            external_id="788032119674292922",
            title="Öko-Windeln Größe 4",
            category_paths=[],
            tags=[],
            active=True,
            in_stock=True,
            first_seen_at=NOW,
            **stamps,
        )
    )
    await scratch.execute(
        _row(
            "product_variants",
            id=70,
            product_id=60,
            shop=SHOP,
            external_id="642667041472713922",
            sku="D-4",
            in_stock=True,
            position=0,
            **stamps,
        )
    )
    await scratch.execute(
        text("UPDATE order_items SET catalog_product_id = 60, catalog_variant_id = 70")
    )
    await scratch.execute(text("DELETE FROM products WHERE id = 60"))
    assert await rows(
        "SELECT id, catalog_product_id, catalog_variant_id FROM order_items ORDER BY id"
    ) == [(50, None, None), (51, None, None)]
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await scratch.execute(text("UPDATE order_items SET catalog_product_id = 999"))


# --- 0027: stats series per step of a sequence -----------------------------------------------


async def test_stats_series_gain_a_step_and_keep_their_totals(scratch: AsyncConnection) -> None:
    await scratch.run_sync(_upgrade, "0026")
    await scratch.execute(
        _row("stats_series", id=1, rule_id="diapers-restock", variant="", template="d", currency="")
    )
    counts = dict.fromkeys(COUNTERS, 0) | {"planned": 3, "sent": 2}
    await scratch.execute(_row("stats_totals", series_id=1, day=NOW.date(), **counts))
    tally = asdict(MessageTally(40, 1, NOW.date(), "sent"))
    await scratch.execute(_row("stats_messages", **tally))
    await scratch.run_sync(_upgrade, "0027")

    async def rows(statement: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await scratch.execute(text(statement))]

    # What was counted before is step 1; the totals and tallies survived the table's copy
    # (SQLite), which would otherwise have cascaded them away.
    assert await rows("SELECT id, rule_id, step FROM stats_series") == [(1, "diapers-restock", 1)]
    assert await rows("SELECT series_id, planned, sent FROM stats_totals") == [(1, 3, 2)]
    assert await rows("SELECT message_id, series_id FROM stats_messages") == [(40, 1)]
    # Step 2 of the same rule, variant and template is a series of its own.
    await scratch.execute(
        _row(
            "stats_series",
            id=2,
            rule_id="diapers-restock",
            variant="",
            template="d",
            currency="",
            step=2,
        )
    )
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await scratch.execute(
            _row(
                "stats_series",
                id=3,
                rule_id="diapers-restock",
                variant="",
                template="d",
                currency="",
                step=2,
            )
        )
