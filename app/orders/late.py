"""Products that arrive after their orders.

An order item whose product the catalog does not know yet is planned with what the order
carries (its own category, tags, SKU). When the product arrives (a product webhook,
`PUT /api/v1/products`, `aftersale catalog import`), the items of orders placed within
`CATALOG_LATE_DAYS` that name it (by product id, variant id or SKU) and have no catalog
product are resolved as intake resolves them, linked, and their orders planned again: rules
that now match plan their messages; those that planned before find their dedupe key taken
and plan nothing. Older orders are left as they are (their mail would come too late).
Everything happens in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.repository import products_by_external_id, products_by_ids
from app.catalog.schemas import ProductIn
from app.catalog.service import find_products_for_items
from app.orders import repository, service
from app.rules.facts import ProductFacts
from app.rules.loader import RuleSet


@dataclass(frozen=True)
class ProductKeys:
    """What order items may name arrived products by."""

    product_ids: frozenset[str] = frozenset()
    variant_ids: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()

    @classmethod
    def of(cls, products: Iterable[ProductIn]) -> ProductKeys:
        product_ids: set[str] = set()
        variant_ids: set[str] = set()
        skus: set[str] = set()
        for product in products:
            if product.id is not None:
                product_ids.add(product.id)
            for variant in product.all_variants():
                if variant.id is not None:
                    variant_ids.add(variant.id)
                if variant.sku is not None:
                    skus.add(variant.sku)
        return cls(frozenset(product_ids), frozenset(variant_ids), frozenset(skus))

    def __bool__(self) -> bool:
        return bool(self.product_ids or self.variant_ids or self.skus)


async def facts_before(
    session: AsyncSession, *, shop: str, keys: ProductKeys
) -> dict[int, ProductFacts]:
    """What rules saw of the products these keys name, before a change is applied: the
    change then re-plans recent orders linked to those whose facts it changed (a WooCommerce
    product filling in the placeholder its variation made), and only those (Shopify sends
    `products/update` on every stock change)."""
    if not keys.product_ids:
        return {}
    rows = await products_by_external_id(session, shop=shop, external_ids=keys.product_ids)
    return {row.id: row.facts() for row in rows.values()}


@dataclass(frozen=True)
class LateMatch:
    items: int = 0  # order items linked to their product now
    messages_planned: int = 0


async def match_late_items(
    session: AsyncSession,
    *,
    shop: str,
    keys: ProductKeys,
    rules: RuleSet,
    now: datetime,
    late_days: int,
    default_time_zone: str,
    before: Mapping[int, ProductFacts] | None = None,
) -> LateMatch:
    """Link the recent items these products resolve, and plan what rules now match.

    `before` (from `facts_before`): recent orders already linked to a product whose facts
    the change altered are planned again too."""
    if not keys or late_days <= 0:
        return LateMatch()
    since = now - timedelta(days=late_days)
    items = await repository.unlinked_items(
        session,
        shop=shop,
        placed_since=since,
        product_ids=keys.product_ids,
        variant_ids=keys.variant_ids,
        skus=keys.skus,
    )
    found = await find_products_for_items(
        session, shop=shop, items=[(item.product_ref, item.variant_ref, item.sku) for item in items]
    )
    links = [
        (item.id, match.product.id, match.variant.id if match.variant else None)
        for item, match in zip(items, found, strict=True)
        if match is not None
    ]
    await repository.link_items(session, links)
    orders = {item.order_id for item, match in zip(items, found, strict=True) if match}
    changed = await _changed(session, shop=shop, before=before or {})
    if changed:
        orders |= await repository.orders_linked_to(
            session, product_ids=changed, placed_since=since
        )
    if not orders:
        return LateMatch()
    planned = 0
    for order in await repository.get_orders(session, orders):
        planned += await service.plan_order_again(
            session, order=order, rules=rules, default_tz=default_time_zone
        )
    return LateMatch(items=len(links), messages_planned=planned)


async def _changed(
    session: AsyncSession, *, shop: str, before: Mapping[int, ProductFacts]
) -> set[int]:
    """The products of `before` whose facts are not what they were."""
    if not before:
        return set()
    rows = await products_by_ids(session, before)
    return {row.id for row in rows if row.facts() != before[row.id]}
