"""All SQL of the catalog: finding products and variants by the keys each source gives,
the lookups order intake makes, and the SKUs orders name that the catalog lacks.

Functions flush at most; the caller owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Order, OrderItem, Product, ProductVariant

# Values per IN list: far below either database's limit on parameters.
_CHUNK = 500


def _chunks(values: Collection[str]) -> list[list[str]]:
    ordered = sorted(set(values))
    return [ordered[start : start + _CHUNK] for start in range(0, len(ordered), _CHUNK)]


async def products_by_external_id(
    session: AsyncSession, *, shop: str, external_ids: Collection[str]
) -> dict[str, Product]:
    found: dict[str, Product] = {}
    for chunk in _chunks(external_ids):
        rows = await session.scalars(
            select(Product).where(Product.shop == shop, Product.external_id.in_(chunk))
        )
        found.update((row.external_id, row) for row in rows if row.external_id is not None)
    return found


async def products_by_handle(
    session: AsyncSession, *, shop: str, handles: Collection[str]
) -> dict[str, list[Product]]:
    """The shop's products with these handles, oldest first (a handle may have been reused
    by a product created after another was deleted)."""
    found: dict[str, list[Product]] = defaultdict(list)
    for chunk in _chunks(handles):
        rows = await session.scalars(
            select(Product)
            .where(Product.shop == shop, Product.handle.in_(chunk))
            .order_by(Product.id)
        )
        for row in rows:
            assert row.handle is not None
            found[row.handle].append(row)
    return found


async def variants_of(
    session: AsyncSession, product_ids: Collection[int]
) -> dict[int, list[ProductVariant]]:
    found: dict[int, list[ProductVariant]] = defaultdict(list)
    ordered = sorted(set(product_ids))
    for start in range(0, len(ordered), _CHUNK):
        rows = await session.scalars(
            select(ProductVariant)
            .where(ProductVariant.product_id.in_(ordered[start : start + _CHUNK]))
            .order_by(ProductVariant.position, ProductVariant.id)
        )
        for row in rows:
            found[row.product_id].append(row)
    return found


async def variant_by_external_id(
    session: AsyncSession, *, shop: str, external_id: str
) -> ProductVariant | None:
    return await session.scalar(
        select(ProductVariant)
        .where(ProductVariant.shop == shop, ProductVariant.external_id == external_id)
        .order_by(ProductVariant.id)
        .limit(1)
    )


async def rows_by_id(
    session: AsyncSession, *, product_ids: Collection[int], variant_ids: Collection[int]
) -> tuple[dict[int, Product], dict[int, ProductVariant]]:
    """Products and variants by our own ids (what order items were resolved to)."""
    products: dict[int, Product] = {}
    variants: dict[int, ProductVariant] = {}
    ordered = sorted(set(product_ids))
    for start in range(0, len(ordered), _CHUNK):
        rows = await session.scalars(
            select(Product).where(Product.id.in_(ordered[start : start + _CHUNK]))
        )
        products.update((row.id, row) for row in rows)
    ordered = sorted(set(variant_ids))
    for start in range(0, len(ordered), _CHUNK):
        found = await session.scalars(
            select(ProductVariant).where(ProductVariant.id.in_(ordered[start : start + _CHUNK]))
        )
        variants.update((row.id, row) for row in found)
    return products, variants


async def add(session: AsyncSession, *rows: Product | ProductVariant) -> None:
    """Insert the rows (their ids are known after)."""
    session.add_all(rows)
    await session.flush()


async def remove_variants(session: AsyncSession, variant_ids: Collection[int]) -> None:
    if variant_ids:
        await session.execute(
            delete(ProductVariant).where(ProductVariant.id.in_(sorted(variant_ids)))
        )


async def variants_for_keys(
    session: AsyncSession, *, shop: str, variant_ids: Collection[str], skus: Collection[str]
) -> list[tuple[ProductVariant, Product]]:
    """The shop's variants with any of these ids or SKUs, each with its product: one
    statement, on the (shop, external_id) and (shop, sku) indexes."""
    conditions = []
    if variant_ids:
        conditions.append(ProductVariant.external_id.in_(sorted(set(variant_ids))))
    if skus:
        conditions.append(ProductVariant.sku.in_(sorted(set(skus))))
    if not conditions:
        return []
    rows = await session.execute(
        select(ProductVariant, Product)
        .join(Product, Product.id == ProductVariant.product_id)
        .where(ProductVariant.shop == shop, or_(*conditions))
        .order_by(ProductVariant.id)
    )
    return [(variant, product) for variant, product in rows.all()]


@dataclass(frozen=True)
class UnknownSkuRow:
    shop: str
    sku: str
    items: int
    orders: int
    quantity: int
    name: str
    last_ordered_at: datetime | None


async def unknown_skus(
    session: AsyncSession, *, shop: str | None, limit: int
) -> list[UnknownSkuRow]:
    """SKUs of order items that no variant of the order's shop has, most ordered first."""
    items = func.count(OrderItem.id)
    statement = (
        select(
            Order.shop,
            OrderItem.sku,
            items,
            func.count(func.distinct(Order.id)),
            func.coalesce(func.sum(OrderItem.quantity), 0),
            func.max(OrderItem.name),
            func.max(Order.placed_at),
        )
        .join(Order, Order.id == OrderItem.order_id)
        .where(
            OrderItem.sku.is_not(None),
            ~exists().where(ProductVariant.shop == Order.shop, ProductVariant.sku == OrderItem.sku),
        )
        .group_by(Order.shop, OrderItem.sku)
        .order_by(items.desc(), Order.shop, OrderItem.sku)
        .limit(limit)
    )
    if shop is not None:
        statement = statement.where(Order.shop == shop)
    rows = await session.execute(statement)
    return [
        UnknownSkuRow(
            shop=row[0],
            sku=row[1] or "",
            items=row[2],
            orders=row[3],
            quantity=int(row[4]),
            name=row[5],
            last_ordered_at=_aware(row[6]),
        )
        for row in rows
    ]


def _aware(value: datetime | None) -> datetime | None:
    # An aggregate comes back without the column's type on SQLite: naive, but UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
