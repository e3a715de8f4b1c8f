"""Shopify and WooCommerce product payloads -> catalog changes (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.catalog.platforms import (
    ProductPayloadError,
    ProductRemoval,
    ProductUpsert,
    VariantUpsert,
    category_tree,
    product_change,
    products_from_shopify,
    products_from_woocommerce,
    variant_from_woocommerce,
)

PAYLOADS = Path(__file__).parent / "payloads"
SHOP = "windelwelt.myshopify.com"
SITE = "moebel.example.de"


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return loaded


def test_a_shopify_product_keeps_taxonomy_type_vendor_tags_links_and_variants() -> None:
    [product] = products_from_shopify(
        payload("shopify_product_create.json"), shop=SHOP, currency="EUR"
    )
    assert product.id == "788032119674292922"
    assert product.handle == "oko-windeln-grosse-4"
    assert product.title == "Öko-Windeln Größe 4"
    assert product.categories == [["Baby & Toddler", "Diapering", "Diapers"]]
    assert product.product_type == "Windeln"
    assert product.vendor == "Lillydoo"
    assert product.tags == ["eco", "Windeln", "subscription"]  # trimmed, repeats once
    assert product.url == f"https://{SHOP}/products/oko-windeln-grosse-4"
    assert product.image_url is not None and product.image_url.endswith(
        "/windeln-4.jpg?v=1760000000"
    )
    assert product.active is True
    assert product.currency == "EUR"
    assert product.created_at == datetime(2026, 10, 2, 13, 15, 31, tzinfo=UTC)
    assert product.updated_at == datetime(2026, 11, 18, 19, 30, tzinfo=UTC)
    small, big = product.variants
    assert (small.id, small.sku, small.title, small.price) == (
        "642667041472713922",
        "DIAPER-4-44",
        "44 Stück",
        Decimal("19.99"),
    )
    assert small.in_stock is True and small.inventory_quantity == 75
    assert small.url == f"{product.url}?variant=642667041472713922"
    # The variant's own image, through image_id.
    assert small.image_url is not None and small.image_url.endswith(
        "/windeln-4-44.jpg?v=1760000000"
    )
    assert big.in_stock is False  # 0 in stock, policy deny
    assert big.image_url is None
    assert product.lowest_price() == Decimal("19.99")
    assert product.any_in_stock() is True


def test_shopify_draft_archived_nulls_and_the_default_variant() -> None:
    data = payload("shopify_product_create.json")
    data.update(status="archived", category=None, product_type="", image=None, images=[])
    data["created_at"] = None
    data["variants"] = [
        data["variants"][1]
        | {"title": "Default Title", "sku": "", "inventory_policy": "continue", "price": "36.50"}
    ]
    [product] = products_from_shopify(data, shop=SHOP)
    assert product.active is False
    assert product.categories == [] and product.product_type is None
    assert product.image_url is None and product.created_at is None and product.currency is None
    [variant] = product.variants
    assert variant.title is None and variant.sku is None
    assert variant.in_stock is True  # sold when out of stock


def test_shopify_topics_become_upserts_and_removals() -> None:
    upsert = product_change(
        "shopify", "products/update", payload("shopify_product_create.json"), shop=SHOP
    )
    assert isinstance(upsert, ProductUpsert) and upsert.products[0].id == "788032119674292922"
    assert product_change(
        "shopify", "products/delete", {"id": 788032119674292922}, shop=SHOP
    ) == ProductRemoval("788032119674292922")
    assert product_change("shopify", "orders/create", {"id": 1}, shop=SHOP) is None


def test_a_bad_shopify_product_names_its_field() -> None:
    data = payload("shopify_product_create.json")
    data["variants"][0]["price"] = "nineteen"
    with pytest.raises(ProductPayloadError, match=r"^products/create: variants\[\].price"):
        product_change("shopify", "products/create", data, shop=SHOP)
    with pytest.raises(ProductPayloadError, match=r"^products/update: variants: missing$"):
        product_change("shopify", "products/update", {"id": 1, "title": "Ohne"}, shop=SHOP)
    with pytest.raises(ProductPayloadError, match=r"^products/delete: id: missing$"):
        product_change("shopify", "products/delete", {}, shop=SHOP)


def test_a_woocommerce_variable_product_lists_its_variations_and_category_parents() -> None:
    tree = category_tree(
        [
            {"id": 17, "name": "Kinderzimmer", "slug": "kinderzimmer", "parent": 0},
            {"id": 30, "name": "Möbel", "slug": "moebel", "parent": 17},
            {"id": 31, "name": "Schreibtische", "slug": "schreibtische", "parent": 30},
        ]
    )
    [product] = products_from_woocommerce(
        payload("woocommerce_product_variable.json"), site=SITE, currency="EUR", categories=tree
    )
    assert product.id == "7301" and product.handle == "kinderschreibtisch-lernfix"
    assert product.title == "Kinderschreibtisch „Lernfix“"
    assert product.categories == [
        ["kinderzimmer", "moebel", "schreibtische"],
        ["kinderzimmer"],
    ]
    assert product.vendor == "Möbelwerk Süd"
    assert product.tags == ["Schulanfang", "mitwachsend"]
    assert product.url == "https://moebel.example.de/produkt/kinderschreibtisch-lernfix/"
    assert product.image_url == "https://moebel.example.de/wp-content/uploads/2026/09/lernfix.jpg"
    assert product.updated_at == datetime(2026, 11, 10, 15, 40, 11, tzinfo=UTC)
    assert product.variant_ids == ["7302", "7303"]
    assert product.all_variants() == []  # they arrive as their own deliveries
    assert product.lowest_price() == Decimal("249") and product.any_in_stock() is True


def test_woocommerce_categories_without_the_tree_are_their_slugs() -> None:
    [product] = products_from_woocommerce(payload("woocommerce_product_variable.json"), site=SITE)
    assert product.categories == [["schreibtische"], ["kinderzimmer"]]


def test_a_woocommerce_simple_product_is_its_own_variant() -> None:
    [product] = products_from_woocommerce(payload("woocommerce_product_simple.json"), site=SITE)
    [variant] = product.all_variants()
    assert (variant.id, variant.sku, variant.price, variant.in_stock) == (
        "794",
        "INK-XL-BK",
        Decimal("21.99"),
        False,
    )
    assert product.any_in_stock() is False
    assert product.image_url is None  # `images: []`


def test_a_woocommerce_variation_is_a_variant_of_its_parent() -> None:
    change = product_change(
        "woocommerce", "product.updated", payload("woocommerce_variation.json"), shop=SITE
    )
    assert isinstance(change, VariantUpsert)
    assert change.product_id == "7301"
    assert change.product_title == "Kinderschreibtisch „Lernfix“ - Eiche"
    variant = change.variant
    assert (variant.id, variant.sku, variant.title, variant.price) == (
        "7303",
        "DESK-LERNFIX-EICHE",
        "Eiche",
        Decimal("269.00"),
    )
    assert variant.in_stock is True  # on backorder: can still be bought
    assert (
        variant.image_url
        == "https://moebel.example.de/wp-content/uploads/2026/09/lernfix-eiche.jpg"
    )
    disabled = variant_from_woocommerce(
        payload("woocommerce_variation.json") | {"status": "private"}
    )
    assert disabled.variant.in_stock is False and disabled.active is False


def test_woocommerce_topics() -> None:
    restored = product_change(
        "woocommerce", "product.restored", payload("woocommerce_product_simple.json"), shop=SITE
    )
    assert isinstance(restored, ProductUpsert) and restored.restore is True
    assert product_change("woocommerce", "product.deleted", {"id": 794}, shop=SITE) == (
        ProductRemoval("794")
    )
    with pytest.raises(ProductPayloadError, match=r"^product\.updated: price: not an amount$"):
        product_change(
            "woocommerce",
            "product.updated",
            payload("woocommerce_product_simple.json") | {"price": "n/a"},
            shop=SITE,
        )
