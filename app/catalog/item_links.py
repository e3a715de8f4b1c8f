"""The catalog data and shop settings that mail links are built from (app/catalog/links.py).

The dispatcher asks once per batch, for every item of every message in it; preview asks for
one order. Two statements for the items intake resolved to the catalog, and one lookup per
shop (`find_products_for_items`, one or two statements) for any it could not resolve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository
from app.catalog.links import CatalogItem, ItemKey, LinkedItem, ShopLinks, item_key, shop_links
from app.catalog.service import find_products_for_items

# {shop: {item key: catalog item}}
ShopCatalogs = Mapping[str, Mapping[ItemKey, CatalogItem]]


async def catalog_for_items(
    session: AsyncSession, items_by_shop: Iterable[tuple[str, Sequence[LinkedItem]]]
) -> dict[str, dict[ItemKey, CatalogItem]]:
    """What the catalog knows of these items, by shop and by what each item says of its
    product (its product and variant ids, else its SKU).

    An item intake resolved (`catalog_product_id`, `catalog_variant_id`) is read by those ids,
    for all shops at once; any other is looked up as intake would (`find_products_for_items`,
    per shop), so an item whose product arrived after the order still gets its links.
    """
    resolved: list[tuple[str, ItemKey, int, int | None]] = []
    wanted: dict[str, dict[ItemKey, None]] = {}
    for shop, items in items_by_shop:
        for item in items:
            key = item_key(item)
            product_id = getattr(item, "catalog_product_id", None)
            if product_id is not None:
                resolved.append((shop, key, product_id, getattr(item, "catalog_variant_id", None)))
            elif any(key):
                wanted.setdefault(shop, {})[key] = None
    found: dict[str, dict[ItemKey, CatalogItem]] = {}
    if resolved:
        products, variants = await repository.rows_by_id(
            session,
            product_ids={product_id for _, _, product_id, _ in resolved},
            variant_ids={variant_id for *_, variant_id in resolved if variant_id is not None},
        )
        for shop, key, product_id, variant_id in resolved:
            product = products.get(product_id)
            if product is not None:
                variant = variants.get(variant_id) if variant_id is not None else None
                found.setdefault(shop, {})[key] = CatalogItem.of(product, variant)
    for shop, keys in wanted.items():
        ordered = [key for key in keys if key not in found.get(shop, {})]
        if not ordered:
            continue
        matches = await find_products_for_items(session, shop=shop, items=ordered)
        for key, match in zip(ordered, matches, strict=True):
            if match is not None:
                found.setdefault(shop, {})[key] = CatalogItem.of(match.product, match.variant)
    return found


class LinkSettings(Protocol):
    """The settings links are built from (app.config.Settings has them)."""

    @property
    def shop_url(self) -> str | None: ...
    @property
    def shop_urls(self) -> Mapping[str, str]: ...
    @property
    def shop_address(self) -> str | None: ...
    @property
    def reorder_url(self) -> str | None: ...


def links_for_shop(
    settings: LinkSettings, shop: str, catalog: Mapping[ItemKey, CatalogItem] | None = None
) -> ShopLinks:
    """The links a message of `shop` gets, from the settings and what the catalog knows."""
    return shop_links(
        shop,
        default_url=settings.shop_url,
        per_shop_urls=settings.shop_urls,
        address=settings.shop_address,
        reorder_template=settings.reorder_url,
        catalog=catalog,
    )
