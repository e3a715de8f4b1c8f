"""The catalog: store products from every source, idempotently, and find the products of
order items. Services take a session and keyword arguments, flush at most, never commit.

Every source says the whole product (variants included, unless WooCommerce sends them
apart), so a product is replaced as a whole. A repeat changes nothing; a product sent with
an older `updated_at` than the catalog holds is left as it is (`stale`); a deleted product
comes back only when restored, sent again without an `updated_at` (our JSON: the operator
means it), or sent with an `updated_at` later than its deletion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository
from app.catalog.platforms import (
    CategoryNode,
    ProductChange,
    ProductRemoval,
    VariantUpsert,
    product_change,
)
from app.catalog.schemas import Platform, ProductIn, VariantIn
from app.models import Product, ProductVariant

Outcome = Literal["added", "updated", "unchanged", "stale"]


@dataclass
class UpsertReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def add(self, other: UpsertReport) -> None:
        for outcome in ("added", "updated", "unchanged", "stale"):
            setattr(self, outcome, getattr(self, outcome) + getattr(other, outcome))


@dataclass(frozen=True)
class ProductEventResult:
    """What a platform's product webhook did to the catalog."""

    # upserted: products or a variation stored (see `report`); deleted: a product marked
    # deleted or a variation removed; unknown: a deletion of something never seen;
    # ignored: a topic that is not about products.
    action: Literal["upserted", "deleted", "unknown", "ignored"]
    report: UpsertReport = field(default_factory=UpsertReport)
    # The platform ids of the products it touched, for matching late order items again.
    product_ids: tuple[str, ...] = ()


async def apply_product_event(
    session: AsyncSession,
    *,
    source: str,
    topic: str,
    payload: Mapping[str, Any],
    shop: str,
    now: datetime,
    currency: str | None = None,
    categories: Mapping[int, CategoryNode] | None = None,
) -> ProductEventResult:
    """Apply a Shopify `products/*` or WooCommerce `product.*` webhook to the catalog.

    `source` is `shopify` or `woocommerce`, `topic` the platform's topic header, `shop` the
    shop as its order webhooks name it. Raises ProductPayloadError (a ValueError naming the
    field) when the payload cannot be read: the caller records an intake failure.
    """
    change = product_change(
        source, topic, payload, shop=shop, currency=currency, categories=categories
    )
    if change is None:
        return ProductEventResult(action="ignored")
    platform: Platform = "shopify" if source == "shopify" else "woocommerce"
    return await apply_change(session, change=change, shop=shop, platform=platform, now=now)


async def apply_change(
    session: AsyncSession, *, change: ProductChange, shop: str, platform: Platform, now: datetime
) -> ProductEventResult:
    if isinstance(change, ProductRemoval):
        removed = await remove_product(session, shop=shop, external_id=change.external_id, now=now)
        return ProductEventResult(
            action="deleted" if removed else "unknown", product_ids=(change.external_id,)
        )
    if isinstance(change, VariantUpsert):
        outcome = await upsert_variant(
            session, shop=shop, platform=platform, change=change, now=now
        )
        report = UpsertReport()
        report.count(outcome)
        return ProductEventResult(
            action="upserted", report=report, product_ids=(change.product_id,)
        )
    report = await upsert_products(
        session,
        shop=shop,
        platform=platform,
        products=change.products,
        now=now,
        restore=change.restore,
    )
    ids = tuple(product.id for product in change.products if product.id is not None)
    return ProductEventResult(action="upserted", report=report, product_ids=ids)


async def upsert_products(
    session: AsyncSession,
    *,
    shop: str,
    platform: Platform,
    products: Sequence[ProductIn],
    now: datetime,
    currency: str | None = None,
    restore: bool = False,
) -> UpsertReport:
    """Store the products of one shop; `currency` is for the prices of those that name none.

    A product is found by its id, else (Shopify's CSV export has no ids) by its handle;
    a product known by handle only takes the id of the first source that gives one.
    """
    report = UpsertReport()
    by_id = await repository.products_by_external_id(
        session, shop=shop, external_ids=[p.id for p in products if p.id is not None]
    )
    unmatched_handles = [
        p.handle for p in products if p.handle is not None and (p.id is None or p.id not in by_id)
    ]
    by_handle = await repository.products_by_handle(session, shop=shop, handles=unmatched_handles)
    variants = await repository.variants_of(
        session,
        {row.id for row in by_id.values()}
        | {row.id for rows in by_handle.values() for row in rows},
    )
    for product in products:
        # Matched here, not up front: a product may come twice in one batch.
        row = _match(product, by_id, by_handle)
        values = _product_values(product, platform=platform, currency=currency)
        if row is None:
            row = Product(shop=shop, first_seen_at=_first_seen(product, now), **values)
            await repository.add(session, row)
            await _sync_variants(session, row, product, existing=variants[row.id])
            if row.external_id is not None:
                by_id[row.external_id] = row
            if row.handle is not None:
                by_handle.setdefault(row.handle, []).append(row)
            report.count("added")
            continue
        if _is_stale(row, product.updated_at, restore=restore):
            report.count("stale")
            continue
        changed = _assign(row, _kept_identity(row, values))
        if row.deleted_at is not None:
            row.deleted_at, changed = None, True
        seen = _first_seen(product, now)
        if product.created_at is not None and seen < row.first_seen_at:
            row.first_seen_at, changed = seen, True
        changed |= await _sync_variants(session, row, product, existing=variants[row.id])
        report.count("updated" if changed else "unchanged")
    await session.flush()
    return report


async def upsert_variant(
    session: AsyncSession, *, shop: str, platform: Platform, change: VariantUpsert, now: datetime
) -> Outcome:
    """Store one variation sent apart from its product. A variation whose product has not
    arrived yet gets a placeholder product, which the product's own payload replaces."""
    found = await repository.products_by_external_id(
        session, shop=shop, external_ids=[change.product_id]
    )
    product = found.get(change.product_id)
    incoming = change.variant
    if product is None:
        product = Product(
            shop=shop,
            platform=platform,
            external_id=change.product_id,
            title=change.product_title,
            category_paths=[],
            tags=[],
            url=incoming.url,
            image_url=incoming.image_url,
            price=incoming.price,
            active=change.active,
            in_stock=incoming.in_stock,
            first_seen_at=now,
        )
        await repository.add(session, product)
        existing: list[ProductVariant] = []
    else:
        existing = (await repository.variants_of(session, [product.id]))[product.id]
    assert incoming.id is not None
    variant = next((v for v in existing if v.external_id == incoming.id), None)
    if variant is None:
        await repository.add(
            session,
            ProductVariant(
                product_id=product.id,
                shop=shop,
                position=len(existing),
                **_variant_values(incoming, external_id=incoming.id),
            ),
        )
        return "added"
    if _is_stale(variant, incoming.updated_at, restore=False):
        return "stale"
    changed = _assign(variant, _variant_values(incoming, external_id=incoming.id))
    await session.flush()
    return "updated" if changed else "unchanged"


async def remove_product(
    session: AsyncSession, *, shop: str, external_id: str, now: datetime
) -> bool:
    """Mark the shop's product with this id deleted, or remove its variant with this id
    (WooCommerce trashes variations by their own id). False when neither is known."""
    found = await repository.products_by_external_id(session, shop=shop, external_ids=[external_id])
    product = found.get(external_id)
    if product is not None:
        if product.deleted_at is None:
            product.deleted_at = now
            await session.flush()
        return True
    variant = await repository.variant_by_external_id(session, shop=shop, external_id=external_id)
    if variant is None:
        return False
    await repository.remove_variants(session, [variant.id])
    return True


class ItemRef(NamedTuple):
    """What an order item says of its product: any of these may be missing."""

    product_id: str | None
    variant_id: str | None
    sku: str | None


@dataclass(frozen=True)
class ProductMatch:
    product: Product
    # None when only the product is known (a WooCommerce variable product whose
    # variations have not arrived), or its variant could not be told.
    variant: ProductVariant | None
    matched_by: Literal["variant_id", "product_id", "sku"]


async def find_products_for_items(
    session: AsyncSession, *, shop: str, items: Sequence[tuple[str | None, str | None, str | None]]
) -> list[ProductMatch | None]:
    """The catalog product of each `(product_id, variant_id, sku)`, in order; None for an
    item the catalog does not know.

    By the platform's variant id, else its product id, else the SKU. Deleted products are
    found too (the order was for them; `product.deleted_at` says so); among several
    variants with one SKU, a live, active one is preferred, then the newest. One statement,
    two when an item is known by product id only.
    """
    refs = [ItemRef(*item) for item in items]
    product_ids = {ref.product_id for ref in refs if ref.product_id}
    # A WooCommerce simple product is its own variant: its product id finds that variant.
    pairs = await repository.variants_for_keys(
        session,
        shop=shop,
        variant_ids={ref.variant_id for ref in refs if ref.variant_id} | product_ids,
        skus={ref.sku for ref in refs if ref.sku},
    )
    missing = missing_product_ids(refs, pairs)
    products = await repository.products_by_external_id(session, shop=shop, external_ids=missing)
    return match_items(refs, pairs, products)


def missing_product_ids(
    refs: Sequence[ItemRef], pairs: Sequence[tuple[ProductVariant, Product]]
) -> set[str]:
    """The product ids of items that the variants found do not resolve: looked up as
    products (a product known without the item's variant)."""
    by_variant_id, _, by_product_id = _indexes(pairs)
    return {
        ref.product_id
        for ref in refs
        if ref.product_id
        and not _by_variant(ref, by_variant_id)
        and ref.product_id not in by_product_id
    }


def match_items(
    refs: Sequence[ItemRef],
    pairs: Sequence[tuple[ProductVariant, Product]],
    products: Mapping[str, Product],
) -> list[ProductMatch | None]:
    """Each item's product from the candidate variants (with their products) and products
    found by its keys: by variant id, else product id, else SKU. Pure: the database lookup
    (`find_products_for_items`) and simulate's in-memory catalog (`memory.py`) share it."""
    by_variant_id, by_sku, by_product_id = _indexes(pairs)
    return [_resolve(ref, by_variant_id, by_sku, by_product_id, products) for ref in refs]


_Pairs = dict[str, list[tuple[ProductVariant, Product]]]


def _indexes(pairs: Sequence[tuple[ProductVariant, Product]]) -> tuple[_Pairs, _Pairs, _Pairs]:
    by_variant_id: dict[str, list[tuple[ProductVariant, Product]]] = {}
    by_sku: dict[str, list[tuple[ProductVariant, Product]]] = {}
    by_product_id: dict[str, list[tuple[ProductVariant, Product]]] = {}
    for variant, product in pairs:
        if variant.external_id is not None:
            by_variant_id.setdefault(variant.external_id, []).append((variant, product))
        if variant.sku is not None:
            by_sku.setdefault(variant.sku, []).append((variant, product))
        if product.external_id is not None:
            by_product_id.setdefault(product.external_id, []).append((variant, product))
    return by_variant_id, by_sku, by_product_id


def _by_variant(
    ref: ItemRef, by_variant_id: Mapping[str, list[tuple[ProductVariant, Product]]]
) -> tuple[ProductVariant, Product] | None:
    if not ref.variant_id:
        return None
    candidates = by_variant_id.get(ref.variant_id, [])
    return _best(
        candidates,
        lambda pair: ref.product_id is not None and pair[1].external_id == ref.product_id,
    )


def _resolve(
    ref: ItemRef,
    by_variant_id: Mapping[str, list[tuple[ProductVariant, Product]]],
    by_sku: Mapping[str, list[tuple[ProductVariant, Product]]],
    by_product_id: Mapping[str, list[tuple[ProductVariant, Product]]],
    products: Mapping[str, Product],
) -> ProductMatch | None:
    pair = _by_variant(ref, by_variant_id)
    if pair is not None:
        return ProductMatch(product=pair[1], variant=pair[0], matched_by="variant_id")
    if ref.product_id:
        # Variants of the product found by the item's other keys: its SKU, or the product
        # id itself (a WooCommerce simple product).
        own = by_product_id.get(ref.product_id, [])
        chosen = next(
            (
                v
                for v, _ in own
                if v.external_id == ref.product_id or (ref.sku and v.sku == ref.sku)
            ),
            None,
        )
        if own:
            return ProductMatch(product=own[0][1], variant=chosen, matched_by="product_id")
        if ref.product_id in products:
            return ProductMatch(
                product=products[ref.product_id], variant=None, matched_by="product_id"
            )
    if ref.sku:
        pair = _best(by_sku.get(ref.sku, []), lambda _pair: False)
        if pair is not None:
            return ProductMatch(product=pair[1], variant=pair[0], matched_by="sku")
    return None


def _best(
    candidates: Sequence[tuple[ProductVariant, Product]], preferred: Any
) -> tuple[ProductVariant, Product] | None:
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda pair: (
            bool(preferred(pair)),
            pair[1].deleted_at is None,
            pair[1].active,
            pair[0].id,
        ),
    )


def _match(
    product: ProductIn, by_id: Mapping[str, Product], by_handle: Mapping[str, list[Product]]
) -> Product | None:
    if product.id is not None and product.id in by_id:
        return by_id[product.id]
    if product.handle is None:
        return None
    rows = by_handle.get(product.handle, [])
    if product.id is not None:
        # Only a product known by handle alone (a CSV import) takes this id.
        return next((row for row in rows if row.external_id is None), None)
    # No id (a CSV import): the live product with this handle, else the newest.
    return next((row for row in rows if row.deleted_at is None), rows[-1] if rows else None)


def _is_stale(row: Product | ProductVariant, updated_at: datetime | None, *, restore: bool) -> bool:
    if updated_at is None:
        return False
    if row.source_updated_at is not None and updated_at < row.source_updated_at:
        return True
    deleted_at = getattr(row, "deleted_at", None)
    # A delayed update written before the deletion does not bring the product back.
    return not restore and deleted_at is not None and updated_at <= deleted_at


def _first_seen(product: ProductIn, now: datetime) -> datetime:
    return min(product.created_at, now) if product.created_at is not None else now


def _product_values(
    product: ProductIn, *, platform: Platform, currency: str | None
) -> dict[str, Any]:
    return {
        "platform": platform,
        "external_id": product.id,
        "handle": product.handle,
        "title": product.title,
        "product_type": product.product_type,
        "vendor": product.vendor,
        "category_paths": [list(path) for path in product.categories],
        "tags": list(product.tags),
        "url": product.url,
        "image_url": product.image_url,
        "price": product.lowest_price(),
        "currency": product.currency or currency,
        "active": product.active,
        "in_stock": product.any_in_stock(),
        "source_updated_at": product.updated_at,
    }


def _kept_identity(row: Product, values: dict[str, Any]) -> dict[str, Any]:
    """What a source that does not know them leaves as they are: the id (CSV), the handle,
    the currency, the last updated_at."""
    for key in ("external_id", "handle", "currency", "source_updated_at"):
        if values[key] is None:
            values[key] = getattr(row, key)
    return values


def _variant_values(variant: VariantIn, *, external_id: str | None) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "sku": variant.sku,
        "title": variant.title,
        "price": variant.price,
        "in_stock": variant.in_stock,
        "inventory_quantity": variant.inventory_quantity,
        "url": variant.url,
        "image_url": variant.image_url,
        "source_updated_at": variant.updated_at,
    }


async def _sync_variants(
    session: AsyncSession, row: Product, product: ProductIn, *, existing: list[ProductVariant]
) -> bool:
    """Make the product's variants what `product` says; whether anything changed."""
    if product.variant_ids is not None:
        # Variants sent apart: only drop the ones the product no longer lists.
        listed = set(product.variant_ids)
        gone = [v for v in existing if v.external_id not in listed]
        await repository.remove_variants(session, [v.id for v in gone])
        existing[:] = [v for v in existing if v not in gone]
        return bool(gone)
    changed = False
    left = list(existing)
    added: list[ProductVariant] = []
    for position, incoming in enumerate(product.all_variants()):
        variant = _match_variant(incoming, left)
        if variant is None:
            added.append(
                ProductVariant(
                    product_id=row.id,
                    shop=row.shop,
                    position=position,
                    **_variant_values(incoming, external_id=incoming.id),
                )
            )
            changed = True
            continue
        left.remove(variant)
        values = _variant_values(incoming, external_id=incoming.id or variant.external_id)
        values["position"] = position
        if values["source_updated_at"] is None:
            values["source_updated_at"] = variant.source_updated_at
        changed |= _assign(variant, values)
    await repository.remove_variants(session, [v.id for v in left])
    await repository.add(session, *added)
    # The list now holds what the product has, for a later payload of the same batch.
    existing[:] = [v for v in existing if v not in left] + added
    return changed or bool(left)


def _match_variant(incoming: VariantIn, candidates: list[ProductVariant]) -> ProductVariant | None:
    if incoming.id is not None:
        exact = next((v for v in candidates if v.external_id == incoming.id), None)
        if exact is not None:
            return exact
        # A variant known without id (a CSV import) takes it, matched by SKU.
        candidates = [v for v in candidates if v.external_id is None]
    if incoming.sku is not None:
        by_sku = next((v for v in candidates if v.sku == incoming.sku), None)
        if by_sku is not None:
            return by_sku
    if incoming.id is None:
        return next((v for v in candidates if v.title == incoming.title), None)
    return None


def _assign(row: Product | ProductVariant, values: Mapping[str, Any]) -> bool:
    """Set the values that differ; whether any did (an equal one is not written)."""
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed
