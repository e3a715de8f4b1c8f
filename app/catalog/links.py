"""Links that sell (pure, no I/O): the shop's URL, each item's product page and image, and a
link that puts the item back in the cart.

The shop's URL is `SHOP_URLS[shop]`, else `SHOP_URL`, else the shop's own host when intake
names a shop by it (a Shopify shop domain, which redirects to the shop's primary domain, or
a WooCommerce site's host). A reorder link is the platform's own:

- Shopify: the cart permalink `{shop_url}/cart/{variant_id}:{quantity}`;
- WooCommerce: `{site}/?add-to-cart={variation or product id}&quantity={quantity}`;
- our JSON: the `REORDER_URL` setting, whose `{sku}`, `{quantity}`, `{product_id}` and
  `{variant_id}` are filled in, URL-encoded.

Whatever cannot be known is None, never a half-built link: templates show a link only when
it is there (`{% if item.reorder_url %}`). Every link in mail is then rewritten to a tracked
click (app/tracking/), so a click and the purchase after it convert.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

Platform = Literal["shopify", "woocommerce", "custom"]

# The shop our own JSON's orders are filed under (app/intake/aftersale.py).
OWN_JSON_SHOP = "default"
_SHOPIFY_HOST = ".myshopify.com"
# Shopify variant ids and WooCommerce product ids are numbers; anything else would make a
# link that only looks right.
_NUMERIC_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


# --- the shop ---------------------------------------------------------------------------------


def shop_platform(shop: str) -> Platform:
    """The platform whose intake filed orders under `shop`: our JSON files them under
    `default`, Shopify under its `*.myshopify.com` domain, WooCommerce under the site's host."""
    if shop == OWN_JSON_SHOP:
        return "custom"
    return "shopify" if shop.endswith(_SHOPIFY_HOST) else "woocommerce"


def shop_url(shop: str, *, default: str | None, per_shop: Mapping[str, str]) -> str | None:
    """The shop's storefront: SHOP_URLS, else SHOP_URL, else its host when it is one."""
    if shop in per_shop:
        return per_shop[shop]
    if default is not None:
        return default
    if shop != OWN_JSON_SHOP and _HOST.match(shop):
        return f"https://{shop}"
    return None


# --- reorder links ----------------------------------------------------------------------------


def shopify_cart_url(shop_url: str | None, variant_id: str | None, quantity: int) -> str | None:
    """Shopify's cart permalink: the variant in the cart, at checkout."""
    if shop_url is None or variant_id is None or not _NUMERIC_ID.match(variant_id):
        return None
    return f"{shop_url}/cart/{variant_id}:{max(quantity, 1)}"


def woocommerce_cart_url(site_url: str | None, product_id: str | None, quantity: int) -> str | None:
    """WooCommerce's add-to-cart link; `product_id` is the variation's id for a variation."""
    if site_url is None or product_id is None or not _NUMERIC_ID.match(product_id):
        return None
    return f"{site_url}/?add-to-cart={product_id}&quantity={max(quantity, 1)}"


def template_reorder_url(
    template: str | None,
    *,
    sku: str | None,
    quantity: int,
    product_id: str | None,
    variant_id: str | None,
) -> str | None:
    """`REORDER_URL` filled in, each value URL-encoded; None when a placeholder it uses is
    unknown for this item."""
    if template is None:
        return None
    values = {
        "sku": sku,
        "quantity": str(max(quantity, 1)),
        "product_id": product_id,
        "variant_id": variant_id,
    }
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(not values[name] for name in used):
        return None
    return template.format(**{name: quote(values[name] or "", safe="") for name in values})


def reorder_url(
    platform: Platform,
    *,
    shop_url: str | None,
    template: str | None,
    product_id: str | None,
    variant_id: str | None,
    sku: str | None,
    quantity: int,
) -> str | None:
    """The link that puts `quantity` of the item back in the cart, or None."""
    if platform == "shopify":
        return shopify_cart_url(shop_url, variant_id, quantity)
    if platform == "woocommerce":
        # A simple product has no variation (WooCommerce sends variation_id 0).
        chosen = variant_id if variant_id not in (None, "", "0") else product_id
        return woocommerce_cart_url(shop_url, chosen, quantity)
    return template_reorder_url(
        template, sku=sku, quantity=quantity, product_id=product_id, variant_id=variant_id
    )


# --- what the catalog knows of an item --------------------------------------------------------


class ProductRow(Protocol):
    """A `Product` row (app/models.py)."""

    platform: str
    external_id: str | None
    handle: str | None
    title: str
    product_type: str | None
    vendor: str | None
    category_paths: list[list[str]]
    tags: list[str]
    url: str | None
    image_url: str | None
    price: Decimal | None
    currency: str | None
    active: bool
    in_stock: bool


class VariantRow(Protocol):
    """A `ProductVariant` row."""

    external_id: str | None
    sku: str | None
    title: str | None
    price: Decimal | None
    in_stock: bool
    url: str | None
    image_url: str | None


def _web(url: str | None) -> str | None:
    # Only http(s) goes in mail: a catalog URL is the shop's, but a template must never get
    # a javascript: or relative link from it.
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.hostname else None


@dataclass(frozen=True)
class CatalogItem:
    """The catalog's product of one order item, and the variant bought when it is known."""

    platform: Platform
    product_id: str | None
    variant_id: str | None
    handle: str | None
    title: str
    variant_title: str | None
    sku: str | None
    url: str | None
    image_url: str | None
    price: Decimal | None
    currency: str | None
    vendor: str | None
    product_type: str | None
    categories: tuple[tuple[str, ...], ...]
    tags: tuple[str, ...]
    available: bool

    @classmethod
    def of(cls, product: ProductRow, variant: VariantRow | None) -> CatalogItem:
        platform: Platform = (
            product.platform if product.platform in ("shopify", "woocommerce") else "custom"  # type: ignore[assignment]
        )
        return cls(
            platform=platform,
            product_id=product.external_id,
            variant_id=variant.external_id if variant else None,
            handle=product.handle,
            title=product.title,
            variant_title=variant.title if variant else None,
            sku=variant.sku if variant else None,
            url=_web(variant.url if variant else None) or _web(product.url),
            image_url=_web(variant.image_url if variant else None) or _web(product.image_url),
            price=(variant.price if variant and variant.price is not None else product.price),
            currency=product.currency,
            vendor=product.vendor,
            product_type=product.product_type,
            categories=tuple(tuple(path) for path in product.category_paths or ()),
            tags=tuple(product.tags or ()),
            available=product.active and (variant.in_stock if variant else product.in_stock),
        )

    def context(self) -> dict[str, Any]:
        """`item.product` in templates."""
        return {
            "title": self.title,
            "variant_title": self.variant_title,
            "url": self.url,
            "image_url": self.image_url,
            "price": self.price,
            "currency": self.currency,
            "vendor": self.vendor,
            "product_type": self.product_type,
            # Each path root first, as "Baby & Toddler > Diapering > Diapers".
            "categories": [" > ".join(path) for path in self.categories],
            "tags": list(self.tags),
            "handle": self.handle,
            "sku": self.sku,
            "product_id": self.product_id,
            "variant_id": self.variant_id,
            "available": self.available,
        }


# (product_ref, variant_ref, sku): what an order item says of its product.
ItemKey = tuple[str | None, str | None, str | None]


class LinkedItem(Protocol):
    """An order item (`OrderItem` row or webhook `ItemIn`); refs are read when present."""

    @property
    def sku(self) -> str | None: ...
    @property
    def quantity(self) -> int: ...


def item_key(item: LinkedItem) -> ItemKey:
    """An `OrderItem` keeps the platform's ids as product_ref/variant_ref; a webhook's
    `ItemIn` (preview) has them as product_id/variant_id."""
    return (
        getattr(item, "product_ref", None) or getattr(item, "product_id", None),
        getattr(item, "variant_ref", None) or getattr(item, "variant_id", None),
        item.sku,
    )


@dataclass(frozen=True)
class ShopLinks:
    """What one message's template gets to link to: its shop and its items' products."""

    url: str | None = None
    address: str | None = None
    platform: Platform = "custom"
    reorder_template: str | None = None
    catalog: Mapping[ItemKey, CatalogItem] = field(default_factory=dict)

    def item(self, item: LinkedItem) -> dict[str, Any]:
        """`item.url`, `item.image_url`, `item.product`, `item.reorder_url` (None when
        unknown), and the platform's `product_id` and `variant_id`."""
        key = item_key(item)
        found = self.catalog.get(key)
        product_id = (found.product_id if found else None) or key[0]
        variant_id = (found.variant_id if found else None) or key[1]
        return {
            "url": found.url if found else None,
            "image_url": found.image_url if found else None,
            "product": found.context() if found else None,
            "reorder_url": reorder_url(
                found.platform if found else self.platform,
                shop_url=self.url,
                template=self.reorder_template,
                product_id=product_id,
                variant_id=variant_id,
                sku=item.sku or (found.sku if found else None),
                quantity=item.quantity,
            ),
            "product_id": product_id,
            "variant_id": variant_id,
        }

    def resolve(self, links: Mapping[str, str]) -> NamedLinks:
        """A rule's `links`: URLs as they are, paths under the shop's URL (None without one)."""
        resolved = NamedLinks()
        for name, target in links.items():
            if target.startswith("/"):
                resolved[name] = self.url + target if self.url is not None else None
            else:
                resolved[name] = target
        return resolved


class NamedLinks(dict[str, str | None]):
    """`links` in templates: a name the rule does not give is None, like any absent link, so
    one template serves rules with and without it (`{% if links.category %}`)."""

    def __missing__(self, key: str) -> None:
        return None


def shop_links(
    shop: str,
    *,
    default_url: str | None,
    per_shop_urls: Mapping[str, str],
    address: str | None,
    reorder_template: str | None,
    catalog: Mapping[ItemKey, CatalogItem] | None = None,
) -> ShopLinks:
    return ShopLinks(
        url=shop_url(shop, default=default_url, per_shop=per_shop_urls),
        address=address,
        platform=shop_platform(shop),
        reorder_template=reorder_template,
        catalog=catalog or {},
    )


def catalog_by_key(
    keys: Sequence[ItemKey], found: Sequence[CatalogItem | None]
) -> dict[ItemKey, CatalogItem]:
    """`find_products_for_items`' answers (as CatalogItem) by the keys they were asked for."""
    return {key: item for key, item in zip(keys, found, strict=True) if item is not None}
