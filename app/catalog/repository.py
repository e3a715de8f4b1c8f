"""All SQL of the catalog: finding products and variants by the keys each source gives,
the lookups order intake makes, and the SKUs orders name that the catalog lacks.

Functions flush at most; the caller owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.recommendations import ProductCard, Purchase, normalized
from app.db import LIKE_ESCAPE, containing
from app.models import Order, OrderItem, OrderStatus, Product, ProductVariant

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


async def list_products(
    session: AsyncSession, *, text: str, before_id: int | None, limit: int
) -> list[tuple[Product, int]]:
    """Products whose title contains `text`, or with a variant of that SKU; newest first,
    keyset-paged by row id, each with its variant count. Deleted products too (marked)."""
    variants = (
        select(func.count(ProductVariant.id))
        .where(ProductVariant.product_id == Product.id)
        .scalar_subquery()
    )
    statement = select(Product, variants).order_by(Product.id.desc()).limit(limit)
    needle = text.strip()
    if needle:
        with_sku = exists().where(
            ProductVariant.product_id == Product.id, ProductVariant.sku == needle
        )
        statement = statement.where(
            or_(
                func.lower(Product.title).like(containing(needle.lower()), escape=LIKE_ESCAPE),
                with_sku,
            )
        )
    if before_id is not None:
        statement = statement.where(Product.id < before_id)
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


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


# -- recommendations ------------------------------------------------------------------------

_CLOSED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)


def _standing(shop: str, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Order.shop == shop,
        Order.placed_at >= since,
        Order.placed_at <= until,
        Order.status.not_in(_CLOSED),
        Order.customer_id.is_not(None),
    ]


async def skus_of_products(
    session: AsyncSession, product_keys: Collection[int]
) -> dict[int, set[str]]:
    """The SKUs of each product's variants."""
    found: dict[int, set[str]] = defaultdict(set)
    ordered = sorted(set(product_keys))
    for start in range(0, len(ordered), _CHUNK):
        rows = await session.execute(
            select(ProductVariant.product_id, ProductVariant.sku).where(
                ProductVariant.product_id.in_(ordered[start : start + _CHUNK]),
                ProductVariant.sku.is_not(None),
            )
        )
        for product_id, sku in rows:
            if sku is not None:
                found[product_id].add(sku)
    return found


async def purchases_of_buyers(
    session: AsyncSession,
    *,
    shop: str,
    product_keys: Collection[int],
    skus: Collection[str],
    since: datetime,
    until: datetime,
    buyers: int,
) -> list[Purchase]:
    """Every purchase in [since, until] of the latest `buyers` customers who bought one of
    these products (known by their variants' SKUs) then: what co-purchase counts read.

    Two index walks (order_items by SKU, then orders by customer), bounded by `buyers`.
    """
    if not skus and not product_keys:
        return []
    bought = [OrderItem.sku.in_(sorted(set(skus)))] if skus else []
    stored = getattr(OrderItem, "product_id", None)
    if stored is not None and product_keys:
        bought.append(stored.in_(sorted(set(product_keys))))
    latest_buyers = (
        select(Order.customer_id)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(*_standing(shop, since, until), or_(*bought))
        .group_by(Order.customer_id)
        .order_by(func.max(Order.placed_at).desc())
        .limit(buyers)
    )
    rows = await session.execute(
        select(Order.customer_id, OrderItem.sku, _stored_product(), Order.placed_at)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(*_standing(shop, since, until), Order.customer_id.in_(latest_buyers))
    )
    return await _purchases(session, shop, rows.all())


async def recent_purchases(
    session: AsyncSession, *, shop: str, since: datetime, until: datetime, limit: int
) -> list[Purchase]:
    """The shop's latest `limit` purchases (order items) in [since, until]: what best
    sellers are counted from (on the (shop, placed_at) index of orders)."""
    rows = await session.execute(
        select(Order.customer_id, OrderItem.sku, _stored_product(), Order.placed_at)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(*_standing(shop, since, until))
        .order_by(Order.placed_at.desc())
        .limit(limit)
    )
    return await _purchases(session, shop, rows.all())


def _stored_product() -> ColumnElement[Any]:
    """The item's product as intake resolved it (products.id); NULL for an item whose
    product was not in the catalog (its SKU decides)."""
    return OrderItem.__table__.c.catalog_product_id


async def _purchases(session: AsyncSession, shop: str, rows: Sequence[Any]) -> list[Purchase]:
    """(customer, sku, stored product, placed_at) rows as purchases of catalog products.

    An item's product is the one intake stored on it, else the product of its SKU among
    the shop's variants. SKUs are looked up apart, once each: a correlated lookup on every
    row made these reads ten times slower (bench/recommendations.py)."""
    by_sku = await product_keys_by_sku(
        session, shop=shop, skus={row[1] for row in rows if row[2] is None and row[1]}
    )
    found = []
    for customer, sku, stored, placed_at in rows:
        product = stored if stored is not None else by_sku.get(sku)
        if product is not None:
            found.append(Purchase(customer, product, _utc(placed_at)))
    return found


async def product_keys_by_sku(
    session: AsyncSession, *, shop: str, skus: Collection[str]
) -> dict[str, int]:
    """The product of each SKU among the shop's variants (the newest when several share it)."""
    found: dict[str, int] = {}
    for chunk in _chunks(skus):
        rows = await session.execute(
            select(ProductVariant.sku, func.max(ProductVariant.product_id))
            .where(ProductVariant.shop == shop, ProductVariant.sku.in_(chunk))
            .group_by(ProductVariant.sku)
        )
        found.update((sku, product) for sku, product in rows if sku is not None)
    return found


async def owned_products(
    session: AsyncSession, *, shop: str, customer_ids: Collection[int]
) -> dict[int, set[int]]:
    """The catalog products each customer has bought in the shop, ever (cancelled and
    refunded orders too: they had it in hand, or chose against it)."""
    found: dict[int, set[int]] = defaultdict(set)
    ordered = sorted(set(customer_ids))
    rows: list[Any] = []
    for start in range(0, len(ordered), _CHUNK):
        result = await session.execute(
            select(Order.customer_id, OrderItem.sku, _stored_product())
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(Order.shop == shop, Order.customer_id.in_(ordered[start : start + _CHUNK]))
            .distinct()
        )
        rows.extend(result.all())
    by_sku = await product_keys_by_sku(
        session, shop=shop, skus={row[1] for row in rows if row[2] is None and row[1]}
    )
    for customer, sku, stored in rows:
        product = stored if stored is not None else by_sku.get(sku)
        if customer is not None and product is not None:
            found[customer].add(product)
    return found


async def newest_products(session: AsyncSession, *, shop: str, limit: int) -> list[int]:
    """The shop's products that can be bought, newest first (ix_products_shop_first_seen)."""
    rows = await session.scalars(
        select(Product.id)
        .where(
            Product.shop == shop,
            Product.active.is_(True),
            Product.in_stock.is_(True),
            Product.deleted_at.is_(None),
        )
        .order_by(Product.first_seen_at.desc(), Product.id.desc())
        .limit(limit)
    )
    return list(rows)


async def product_cards(
    session: AsyncSession, product_keys: Collection[int]
) -> dict[int, ProductCard]:
    """The products as recommendations show them: the first variant in stock gives the SKU,
    price, link and image when it has its own."""
    wanted = sorted(set(product_keys))
    products: list[Product] = []
    for start in range(0, len(wanted), _CHUNK):
        products.extend(
            await session.scalars(
                select(Product).where(Product.id.in_(wanted[start : start + _CHUNK]))
            )
        )
    variants = await variants_of(session, [product.id for product in products])
    cards = {}
    for product in products:
        own = variants.get(product.id, [])
        variant = next((v for v in own if v.in_stock), own[0] if own else None)
        cards[product.id] = ProductCard(
            key=product.id,
            title=product.title,
            product_id=product.external_id,
            sku=variant.sku if variant else None,
            url=product.url or (variant.url if variant else None),
            image_url=product.image_url or (variant.image_url if variant else None),
            price=variant.price if variant and variant.price is not None else product.price,
            currency=product.currency,
            categories=normalized(product.category_paths),
            available=product.active and product.in_stock and product.deleted_at is None,
            first_seen_at=product.first_seen_at,
        )
    return cards


def _utc(value: datetime | None) -> datetime:
    # placed_at is set on every order a customer is linked to (the query asks for both).
    assert value is not None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
