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


async def products_by_ids(session: AsyncSession, ids: Collection[int]) -> list[Product]:
    """These product rows as they are now (what the session holds, refreshed)."""
    ordered = sorted(set(ids))
    found: list[Product] = []
    for start in range(0, len(ordered), _CHUNK):
        rows = await session.scalars(
            select(Product)
            .where(Product.id.in_(ordered[start : start + _CHUNK]))
            .execution_options(populate_existing=True)
        )
        found.extend(rows)
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
    product_id: str | None
    items: int
    orders: int
    quantity: int
    name: str
    last_ordered_at: datetime | None


async def unknown_skus(
    session: AsyncSession, *, shop: str | None, limit: int
) -> list[UnknownSkuRow]:
    """Order items with no catalog product, by SKU (and product id), most ordered first.

    An item counts when intake could not link it and the catalog still cannot resolve it
    (no variant with its SKU or variant id, no product with its product id): items of orders
    older than a product, which are never linked, leave the list once the product is there.
    Items that name nothing to look for (a custom item without SKU or ids) are left out.
    """
    items = func.count(OrderItem.id)
    variant_has_sku = exists().where(
        ProductVariant.shop == Order.shop, ProductVariant.sku == OrderItem.sku
    )
    variant_has_id = exists().where(
        ProductVariant.shop == Order.shop, ProductVariant.external_id == OrderItem.variant_ref
    )
    product_has_id = exists().where(
        Product.shop == Order.shop, Product.external_id == OrderItem.product_ref
    )
    statement = (
        select(
            Order.shop,
            OrderItem.sku,
            OrderItem.product_ref,
            items,
            func.count(func.distinct(Order.id)),
            func.coalesce(func.sum(OrderItem.quantity), 0),
            func.max(OrderItem.name),
            func.max(Order.placed_at),
        )
        .join(Order, Order.id == OrderItem.order_id)
        .where(
            OrderItem.catalog_product_id.is_(None),
            or_(OrderItem.sku.is_not(None), OrderItem.product_ref.is_not(None)),
            ~(OrderItem.sku.is_not(None) & variant_has_sku),
            ~(OrderItem.variant_ref.is_not(None) & variant_has_id),
            ~(OrderItem.product_ref.is_not(None) & product_has_id),
        )
        .group_by(Order.shop, OrderItem.sku, OrderItem.product_ref)
        .order_by(items.desc(), Order.shop, OrderItem.sku, OrderItem.product_ref)
        .limit(limit)
    )
    if shop is not None:
        statement = statement.where(Order.shop == shop)
    rows = await session.execute(statement)
    return [
        UnknownSkuRow(
            shop=row[0],
            sku=row[1] or "",
            product_id=row[2],
            items=row[3],
            orders=row[4],
            quantity=int(row[5]),
            name=row[6],
            last_ordered_at=_aware(row[7]),
        )
        for row in rows
    ]


def _aware(value: datetime | None) -> datetime | None:
    # An aggregate comes back without the column's type on SQLite: naive, but UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
