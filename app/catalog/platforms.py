"""Shopify and WooCommerce product payloads -> catalog changes. Pure: JSON in, our JSON out.

Shopify sends the REST product for `products/create|update` (all its variants and images;
`tags` as one comma-separated string; `category`, the taxonomy node, from API version
2024-10) and `{"id": N}` for `products/delete`. WooCommerce sends the REST v3 product for
`product.created|updated|restored`, for a variation too (then `type` is `variation` and
`parent_id` names its product), and `{"id": N}` for `product.deleted` (moved to the trash).
A WooCommerce product names its categories by id, name and slug only: their parents come
from the shop's category list (`category_tree`) when the caller has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from app.catalog.schemas import (
    CATEGORY_SEPARATOR,
    MAX_CATEGORIES,
    MAX_CATEGORY_DEPTH,
    MAX_TAGS,
    ProductIn,
    VariantIn,
)

SHOPIFY_TOPICS = frozenset({"products/create", "products/update", "products/delete"})
WOOCOMMERCE_TOPICS = frozenset(
    {"product.created", "product.updated", "product.deleted", "product.restored"}
)
_LABEL_LENGTH = 255
_TITLE_LENGTH = 500
# Shopify's title of the only variant of a product without options: nothing to show.
_DEFAULT_VARIANT_TITLE = "Default Title"


class ProductPayloadError(ValueError):
    """A product payload that cannot become a catalog change; the message names the field."""


@dataclass(frozen=True)
class ProductUpsert:
    """Store these products (as a whole, variants included unless sent apart)."""

    products: tuple[ProductIn, ...]
    # WooCommerce `product.restored`: out of the trash again, whatever the times say.
    restore: bool = False


@dataclass(frozen=True)
class VariantUpsert:
    """One WooCommerce variation, sent apart from its product."""

    product_id: str
    variant: VariantIn
    # For a placeholder product while the variation's product has not arrived yet.
    product_title: str
    active: bool


@dataclass(frozen=True)
class ProductRemoval:
    """The shop deleted (or trashed) the product, or the variation, with this id."""

    external_id: str


ProductChange = ProductUpsert | VariantUpsert | ProductRemoval


@dataclass(frozen=True)
class CategoryNode:
    slug: str
    parent: int  # 0 for a top-level category, as WooCommerce writes it


def product_change(
    source: str,
    topic: str,
    payload: Mapping[str, Any],
    *,
    shop: str,
    currency: str | None = None,
    categories: Mapping[int, CategoryNode] | None = None,
) -> ProductChange | None:
    """The catalog change of a platform's product webhook; None for a topic that is not
    about products. Raises ProductPayloadError for a payload it cannot read."""
    try:
        if source == "shopify" and topic in SHOPIFY_TOPICS:
            if topic == "products/delete":
                return ProductRemoval(_required_id(payload.get("id"), "id"))
            return ProductUpsert(
                tuple(products_from_shopify(payload, shop=shop, currency=currency))
            )
        if source == "woocommerce" and topic in WOOCOMMERCE_TOPICS:
            if topic == "product.deleted":
                return ProductRemoval(_required_id(payload.get("id"), "id"))
            if _is_variation(payload):
                return variant_from_woocommerce(payload)
            products = products_from_woocommerce(
                payload, site=shop, currency=currency, categories=categories
            )
            return ProductUpsert(tuple(products), restore=topic == "product.restored")
    except ValidationError as exc:
        raise ProductPayloadError(f"{topic}: {describe(exc)}") from None
    except ProductPayloadError as exc:
        raise ProductPayloadError(f"{topic}: {exc}") from None
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ProductPayloadError(f"{topic}: {type(exc).__name__}") from None
    return None


def products_from_shopify(
    payload: Mapping[str, Any], *, shop: str, currency: str | None = None
) -> list[ProductIn]:
    """The product of a Shopify `products/create|update` payload (the REST product)."""
    product_id = _required_id(payload.get("id"), "id")
    if not _list(payload.get("variants")):
        # Every Shopify product has a variant; a payload without (include_fields) would
        # otherwise read as a product without options and drop the variants stored.
        raise ProductPayloadError("variants: missing")
    handle = _text(payload.get("handle"))
    # The myshopify.com domain redirects to the shop's primary domain.
    url = f"https://{shop}/products/{handle}" if handle else None
    images = [_obj(image) for image in _list(payload.get("images"))]
    image_by_id = {
        image_id: src
        for image in images
        if (image_id := _text(image.get("id"))) and (src := _url(image.get("src")))
    }
    product_image = _url(_obj(payload.get("image")).get("src")) or next(
        iter(image_by_id.values()), None
    )
    variants = [
        _shopify_variant(_obj(variant), url=url, image_by_id=image_by_id)
        for variant in sorted(_list(payload.get("variants")), key=_position)
    ]
    status = _text(payload.get("status"))
    category = _text(_obj(payload.get("category")).get("full_name"))
    return [
        ProductIn.model_validate(
            {
                "id": product_id,
                "handle": handle,
                "title": _title(payload.get("title")) or handle or product_id,
                "product_type": _label(payload.get("product_type")),
                "vendor": _label(payload.get("vendor")),
                "categories": [_path(category.split(CATEGORY_SEPARATOR.strip()))]
                if category
                else [],
                "tags": _tags(_text(payload.get("tags")) or ""),
                "url": url,
                "image_url": product_image,
                # Older API versions have no status: published_at tells the same.
                "active": status == "active"
                if status is not None
                else payload.get("published_at") is not None,
                "currency": currency,
                "created_at": _time(payload.get("created_at")),
                "updated_at": _time(payload.get("updated_at")),
                "variants": variants,
            }
        )
    ]


def _shopify_variant(
    variant: dict[str, Any], *, url: str | None, image_by_id: Mapping[str, str]
) -> dict[str, Any]:
    variant_id = _required_id(variant.get("id"), "variants[].id")
    title = _title(variant.get("title"))
    quantity = variant.get("inventory_quantity")
    quantity = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None
    # Sold when out of stock (`continue`), or stock not tracked (no inventory_management,
    # a field Shopify stopped sending in 2024-07: then the quantity is all there is).
    in_stock = (
        quantity is None
        or quantity > 0
        or variant.get("inventory_policy") == "continue"
        or ("inventory_management" in variant and variant["inventory_management"] is None)
    )
    return {
        "id": variant_id,
        "sku": _label(variant.get("sku")),
        "title": None if title == _DEFAULT_VARIANT_TITLE else title,
        "price": _money(variant.get("price"), "variants[].price"),
        "in_stock": in_stock,
        "inventory_quantity": quantity,
        "url": f"{url}?variant={variant_id}" if url else None,
        "image_url": image_by_id.get(_text(variant.get("image_id")) or ""),
        "updated_at": _time(variant.get("updated_at")),
    }


def products_from_woocommerce(
    payload: Mapping[str, Any],
    *,
    site: str,
    currency: str | None = None,
    categories: Mapping[int, CategoryNode] | None = None,
) -> list[ProductIn]:
    """The product of a WooCommerce `product.created|updated|restored` payload (REST v3).

    A simple product is its own single variant; a variable one lists only its variations'
    ids (`variations`), which arrive as their own deliveries. `site` is the shop's host,
    kept for symmetry with the Shopify mapper: WooCommerce sends full permalinks.
    """
    del site
    if _is_variation(payload):
        raise ProductPayloadError("a variation, not a product: see variant_from_woocommerce")
    product_id = _required_id(payload.get("id"), "id")
    variable = payload.get("type") == "variable"
    stock_status = _text(payload.get("stock_status"))
    image = _first_image(payload)
    quantity = payload.get("stock_quantity")
    data: dict[str, Any] = {
        "id": product_id,
        "handle": _label(payload.get("slug")),
        "title": _title(payload.get("name")) or _label(payload.get("slug")) or product_id,
        "vendor": _woocommerce_brand(payload),
        "categories": _woocommerce_categories(payload.get("categories"), categories or {}),
        "tags": _tags([_obj(tag).get("name") for tag in _list(payload.get("tags"))]),
        "url": _url(payload.get("permalink")),
        "image_url": image,
        "active": payload.get("status", "publish") == "publish",
        "currency": currency,
        "created_at": _gmt(payload.get("date_created_gmt")),
        "updated_at": _gmt(payload.get("date_modified_gmt")),
        "price": _money(payload.get("price"), "price"),
        # Backorders can still be bought.
        "in_stock": stock_status in (None, "instock", "onbackorder"),
    }
    if variable:
        data["variant_ids"] = [
            _required_id(variation, "variations[]")
            for variation in _list(payload.get("variations"))
        ]
    else:
        data["sku"] = _label(payload.get("sku"))
        data["inventory_quantity"] = quantity if isinstance(quantity, int) else None
    return [ProductIn.model_validate(data)]


def variant_from_woocommerce(payload: Mapping[str, Any]) -> VariantUpsert:
    """A WooCommerce variation, as its `product.*` webhook (or the REST API) sends it."""
    variation_id = _required_id(payload.get("id"), "id")
    parent_id = _required_id(payload.get("parent_id"), "parent_id")
    options = [
        option
        for attribute in _list(payload.get("attributes"))
        if (option := _text(_obj(attribute).get("option")))
    ]
    stock_status = _text(payload.get("stock_status"))
    quantity = payload.get("stock_quantity")
    # A disabled variation (status `private`) cannot be bought. (Some versions send `true`.)
    enabled = payload.get("status", "publish") in ("publish", True)
    variant = VariantIn.model_validate(
        {
            "id": variation_id,
            "sku": _label(payload.get("sku")),
            "title": _title(" / ".join(options)),
            "price": _money(payload.get("price"), "price"),
            "in_stock": enabled and stock_status in (None, "instock", "onbackorder"),
            "inventory_quantity": quantity if isinstance(quantity, int) else None,
            "url": _url(payload.get("permalink")),
            "image_url": _url(_obj(payload.get("image")).get("src")) or _first_image(payload),
            "updated_at": _gmt(payload.get("date_modified_gmt")),
        }
    )
    return VariantUpsert(
        product_id=parent_id,
        variant=variant,
        product_title=_title(payload.get("name")) or parent_id,
        active=enabled,
    )


def category_tree(api_categories: Any) -> dict[int, CategoryNode]:
    """WooCommerce's category list (GET /wp-json/wc/v3/products/categories: id, slug,
    parent) as the parents `products_from_woocommerce` follows."""
    tree = {}
    for entry in _list(api_categories):
        category = _obj(entry)
        slug = _label(category.get("slug"))
        if isinstance(category.get("id"), int) and slug:
            parent = category.get("parent")
            tree[category["id"]] = CategoryNode(slug, parent if isinstance(parent, int) else 0)
    return tree


def _woocommerce_categories(value: Any, tree: Mapping[int, CategoryNode]) -> list[list[str]]:
    paths: list[list[str]] = []
    for entry in _list(value):
        category = _obj(entry)
        slug = _label(category.get("slug"))
        if slug is None:
            continue
        path, parent = [slug], tree[category["id"]].parent if category.get("id") in tree else 0
        # Parents up to the root; a cycle or a parent the list lacks ends the walk.
        while parent in tree and len(path) < MAX_CATEGORY_DEPTH:
            node = tree[parent]
            if node.slug in path:
                break
            path.insert(0, node.slug)
            parent = node.parent
        if path not in paths:
            paths.append(path)
    return paths[:MAX_CATEGORIES]


def _woocommerce_brand(payload: Mapping[str, Any]) -> str | None:
    # `brands` (WooCommerce 9.6+, the core Brands taxonomy): the first is the product's.
    names = [_label(_obj(brand).get("name")) for brand in _list(payload.get("brands"))]
    return next((name for name in names if name), None)


def _is_variation(payload: Mapping[str, Any]) -> bool:
    return payload.get("type") == "variation" or bool(payload.get("parent_id"))


def _first_image(payload: Mapping[str, Any]) -> str | None:
    images = sorted((_obj(image) for image in _list(payload.get("images"))), key=_position)
    return next((src for image in images if (src := _url(image.get("src")))), None)


def _position(entry: Any) -> int:
    position = _obj(entry).get("position")
    return position if isinstance(position, int) else 0


def _path(levels: list[str]) -> list[str]:
    return [level for part in levels if (level := _label(part))][:MAX_CATEGORY_DEPTH]


def _tags(value: str | list[Any]) -> list[str]:
    raw = value.split(",") if isinstance(value, str) else value
    tags = [tag.strip() for tag in raw if isinstance(tag, str) and tag.strip()]
    return list(dict.fromkeys(tag for tag in tags if len(tag) <= _LABEL_LENGTH))[:MAX_TAGS]


def _required_id(raw: Any, field: str) -> str:
    value = _text(raw)
    if value is None:
        raise ProductPayloadError(f"{field}: missing")
    if len(value) > 64 or any(character.isspace() for character in value):
        raise ProductPayloadError(f"{field}: not an id")
    return value


def _text(value: Any) -> str | None:
    """A non-empty string (ids sent as integers become their exact digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _label(value: Any) -> str | None:
    text = _text(value)
    return text if text is None or len(text) <= _LABEL_LENGTH else text[:_LABEL_LENGTH]


def _title(value: Any) -> str | None:
    text = _text(value)
    return text[:_TITLE_LENGTH] if text is not None else None


def _url(value: Any) -> str | None:
    text = _text(value)
    if text is None or not text.startswith(("https://", "http://")) or len(text) > 2048:
        return None
    return text if not any(character.isspace() for character in text) else None


def _money(value: Any, field: str) -> Decimal | None:
    """Prices come as strings ("19.99"); WooCommerce sends "" for none."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        raise ProductPayloadError(f"{field}: not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ProductPayloadError(f"{field}: not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ProductPayloadError(f"{field}: not an amount")
    return amount.quantize(Decimal("0.0001"))


def _time(value: Any) -> datetime | None:
    """An ISO time with its offset (Shopify's), else None (Shopify sends null freely)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _gmt(value: Any) -> datetime | None:
    """A WooCommerce `*_gmt` time: ISO without an offset, in UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def describe(exc: ValidationError) -> str:
    """Field paths and messages, never the values (they may be long or personal)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )
