"""The catalog data and shop settings that mail links are built from (app/catalog/links.py).

The dispatcher asks once per batch, for every item of every message in it; preview asks for
one order. One lookup per shop (`find_products_for_items`, one or two statements).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.links import CatalogItem, ItemKey, LinkedItem, ShopLinks, item_key, shop_links
from app.catalog.service import find_products_for_items
from app.config import Settings

# {shop: {item key: catalog item}}
ShopCatalogs = Mapping[str, Mapping[ItemKey, CatalogItem]]


async def catalog_for_items(
    session: AsyncSession, items_by_shop: Iterable[tuple[str, Sequence[LinkedItem]]]
) -> dict[str, dict[ItemKey, CatalogItem]]:
    """What the catalog knows of these items, by shop and by what each item says of its
    product (its product and variant ids, else its SKU)."""
    wanted: dict[str, dict[ItemKey, None]] = {}
    for shop, items in items_by_shop:
        keys = wanted.setdefault(shop, {})
        for item in items:
            key = item_key(item)
            if any(key):
                keys[key] = None
    found: dict[str, dict[ItemKey, CatalogItem]] = {}
    for shop, keys in wanted.items():
        ordered = list(keys)
        if not ordered:
            continue
        matches = await find_products_for_items(session, shop=shop, items=ordered)
        found[shop] = {
            key: CatalogItem.of(match.product, match.variant)
            for key, match in zip(ordered, matches, strict=True)
            if match is not None
        }
    return found


def links_for_shop(
    settings: Settings, shop: str, catalog: Mapping[ItemKey, CatalogItem] | None = None
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
