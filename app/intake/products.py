"""Product webhooks into the catalog: the `ProductIntake` slot of Shopify and WooCommerce.

Shopify `products/create|update|delete` and WooCommerce `product.created|updated|deleted|
restored` are signed, stored raw and deduplicated like every delivery (`service.py`); their
payload becomes a catalog change (`app.catalog.platforms.product_change`, pure), which
`app.catalog.service.apply_change` stores. Order items that were waiting for the product are
then linked and planned again (`app.orders.late`), in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import service as catalog
from app.catalog.platforms import (
    SHOPIFY_TOPICS,
    WOOCOMMERCE_TOPICS,
    ProductChange,
    ProductPayloadError,
    ProductRemoval,
    ProductUpsert,
    VariantUpsert,
    product_change,
)
from app.catalog.schemas import Platform as CatalogPlatform
from app.config import Settings
from app.intake.payloads import PayloadError
from app.intake.platform import MapContext, ProductIntake
from app.orders.late import ProductKeys, facts_before, match_late_items
from app.rules.loader import RuleSet


def _mapper(source: CatalogPlatform) -> Any:
    def mapped(payload: dict[str, Any], ctx: MapContext) -> ProductChange | None:
        try:
            return product_change(source, ctx.topic, payload, shop=ctx.shop)
        except ProductPayloadError as exc:
            raise PayloadError(str(exc)) from None  # it names the topic and field

    return mapped


def _applier(source: CatalogPlatform) -> Any:
    async def apply(
        session: AsyncSession,
        *,
        shop: str,
        change: ProductChange,
        now: Any,
        rules: RuleSet,
        settings: Settings,
    ) -> int:
        keys = _keys(change)
        before = await facts_before(session, shop=shop, keys=keys)
        await catalog.apply_change(session, change=change, shop=shop, platform=source, now=now)
        matched = await match_late_items(
            session,
            shop=shop,
            keys=keys,
            before=before,
            rules=rules,
            now=now,
            late_days=settings.catalog_late_days,
            default_time_zone=settings.default_time_zone,
        )
        return matched.messages_planned

    return apply


def _keys(change: ProductChange) -> ProductKeys:
    if isinstance(change, ProductUpsert):
        return ProductKeys.of(change.products)
    if isinstance(change, VariantUpsert):
        variant = change.variant
        return ProductKeys(
            product_ids=frozenset({change.product_id}),
            variant_ids=frozenset({variant.id} if variant.id else ()),
            skus=frozenset({variant.sku} if variant.sku else ()),
        )
    assert isinstance(change, ProductRemoval)
    return ProductKeys()  # a removal resolves nothing new


SHOPIFY = ProductIntake(topics=SHOPIFY_TOPICS, mapper=_mapper("shopify"), apply=_applier("shopify"))
WOOCOMMERCE = ProductIntake(
    topics=WOOCOMMERCE_TOPICS, mapper=_mapper("woocommerce"), apply=_applier("woocommerce")
)
