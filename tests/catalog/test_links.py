"""Links that sell, built from settings and the catalog (app/catalog/links.py): per platform,
and absent (None, never a half-built link) when something is not known."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.catalog.links import (
    CatalogItem,
    NamedLinks,
    reorder_url,
    shop_links,
    shop_platform,
    shop_url,
    template_reorder_url,
)
from app.config import Settings
from app.events import ItemIn
from app.models import OrderItem, Product, ProductVariant
from app.shops import check_reorder_template, parse_shop_urls

SHOPIFY = "greenleaf-kids.myshopify.com"
WOO = "kinderzimmer-shop.de"


def product(**values: object) -> Product:
    defaults: dict[str, object] = {
        "platform": "shopify",
        "external_id": "8012345678901",
        "handle": "oeko-windeln-groesse-4",
        "title": "Öko-Windeln Größe 4",
        "product_type": "Windeln",
        "vendor": "Lillydoo",
        "category_paths": [["Baby & Toddler", "Diapering", "Diapers"]],
        "tags": ["eco", "vegan"],
        "url": f"https://{SHOPIFY}/products/oeko-windeln-groesse-4",
        "image_url": "https://cdn.shopify.com/s/files/1/0612/files/windeln-4.jpg",
        "price": Decimal("19.99"),
        "currency": "EUR",
        "active": True,
        "in_stock": True,
    }
    return Product(**{**defaults, **values})


def variant(**values: object) -> ProductVariant:
    defaults: dict[str, object] = {
        "external_id": "44712043118926",
        "sku": "DIAPER-4-44",
        "title": "44 Stück",
        "price": Decimal("19.99"),
        "in_stock": True,
        "url": f"https://{SHOPIFY}/products/oeko-windeln-groesse-4?variant=44712043118926",
        "image_url": None,
    }
    return ProductVariant(**{**defaults, **values})


def item(sku: str | None = "DIAPER-4-44", quantity: int = 2, **refs: str | None) -> OrderItem:
    row = OrderItem(sku=sku, name="Öko-Windeln", quantity=quantity, tags=[], attributes={})
    for name, value in refs.items():  # product_ref / variant_ref, once orders carry them
        setattr(row, name, value)
    return row


# --- the shop ---------------------------------------------------------------------------------


def test_the_platform_is_told_by_how_intake_names_the_shop() -> None:
    assert shop_platform("default") == "custom"
    assert shop_platform(SHOPIFY) == "shopify"
    assert shop_platform(WOO) == "woocommerce"


def test_shop_url_per_shop_then_the_setting_then_the_shops_own_host() -> None:
    per_shop = {SHOPIFY: "https://greenleaf.example"}
    assert shop_url(SHOPIFY, default="https://x.example", per_shop=per_shop) == (
        "https://greenleaf.example"
    )
    assert shop_url(WOO, default="https://x.example", per_shop=per_shop) == "https://x.example"
    # The myshopify.com domain redirects to the shop's primary domain; a WooCommerce site's
    # host is its shop.
    assert shop_url(SHOPIFY, default=None, per_shop={}) == f"https://{SHOPIFY}"
    assert shop_url(WOO, default=None, per_shop={}) == f"https://{WOO}"
    # Our JSON's orders name no host: no link unless configured.
    assert shop_url("default", default=None, per_shop={}) is None


def test_shop_url_settings_are_read_and_checked() -> None:
    settings = Settings(
        shop_url="https://shop.example/",
        shop_urls=f"{SHOPIFY.upper()}=https://greenleaf.example/, {WOO}=https://{WOO}/shop",
        shop_address="Greenleaf GmbH\\nHauptstraße 1, 10115 Berlin",
        reorder_url="https://shop.example/reorder?sku={sku}&qty={quantity}",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.shop_url == "https://shop.example"
    assert settings.shop_urls == {
        SHOPIFY: "https://greenleaf.example",
        WOO: f"https://{WOO}/shop",
    }
    assert settings.shop_address == "Greenleaf GmbH\nHauptstraße 1, 10115 Berlin"
    with pytest.raises(ValidationError, match=r"SHOP_URL: 'shop\.example' is not an absolute"):
        Settings(shop_url="shop.example", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="is not shop=url"):
        parse_shop_urls("https://greenleaf.example")
    with pytest.raises(ValueError, match=r"unknown placeholder \{id\}"):
        check_reorder_template("https://shop.example/r?p={id}")
    with pytest.raises(ValueError, match="not an absolute"):
        check_reorder_template("/reorder?sku={sku}")


# --- reorder links, per platform --------------------------------------------------------------


def test_shopify_cart_permalink() -> None:
    links = shop_links(
        SHOPIFY,
        default_url=None,
        per_shop_urls={SHOPIFY: "https://greenleaf.example"},
        address=None,
        reorder_template=None,
        catalog={(None, None, "DIAPER-4-44"): CatalogItem.of(product(), variant())},
    )
    seen = links.item(item(quantity=3))
    assert seen["reorder_url"] == "https://greenleaf.example/cart/44712043118926:3"
    assert seen["url"] == (
        f"https://{SHOPIFY}/products/oeko-windeln-groesse-4?variant=44712043118926"
    )
    # The variant has no image of its own: the product's.
    assert seen["image_url"] == "https://cdn.shopify.com/s/files/1/0612/files/windeln-4.jpg"
    assert seen["product"]["title"] == "Öko-Windeln Größe 4"
    assert seen["product"]["categories"] == ["Baby & Toddler > Diapering > Diapers"]
    assert seen["product"]["vendor"] == "Lillydoo"
    assert seen["product"]["price"] == Decimal("19.99")
    assert (seen["product_id"], seen["variant_id"]) == ("8012345678901", "44712043118926")


def test_shopify_from_the_orders_own_variant_id_when_the_catalog_lacks_it() -> None:
    links = shop_links(
        SHOPIFY, default_url=None, per_shop_urls={}, address=None, reorder_template=None
    )
    seen = links.item(item(product_ref="8012345678901", variant_ref="44712043118926"))
    assert seen["reorder_url"] == f"https://{SHOPIFY}/cart/44712043118926:2"
    assert seen["url"] is None and seen["image_url"] is None and seen["product"] is None
    # Only a SKU (a custom line item): nothing to put in a Shopify cart.
    assert links.item(item())["reorder_url"] is None


def test_woocommerce_add_to_cart_with_the_variation_or_the_product() -> None:
    site = f"https://{WOO}/shop"
    assert (
        reorder_url(
            "woocommerce",
            shop_url=site,
            template=None,
            product_id="4711",
            variant_id="4733",
            sku="SCHREIBTISCH-W",
            quantity=1,
        )
        == f"{site}/?add-to-cart=4733&quantity=1"
    )
    # A simple product: WooCommerce sends variation_id 0.
    for variation in (None, "0"):
        assert (
            reorder_url(
                "woocommerce",
                shop_url=site,
                template=None,
                product_id="4711",
                variant_id=variation,
                sku=None,
                quantity=2,
            )
            == f"{site}/?add-to-cart=4711&quantity=2"
        )
    woo = product(
        platform="woocommerce",
        external_id="4711",
        url=f"https://{WOO}/produkt/schreibtisch-wachsend/",
        image_url=f"https://{WOO}/wp-content/uploads/2026/09/schreibtisch.jpg",
    )
    links = shop_links(
        WOO,
        default_url=None,
        per_shop_urls={},
        address=None,
        reorder_template=None,
        catalog={
            (None, None, "SCHREIBTISCH-W"): CatalogItem.of(
                woo, variant(external_id="4711", sku="SCHREIBTISCH-W", url=None)
            )
        },
    )
    seen = links.item(item("SCHREIBTISCH-W", quantity=1))
    assert seen["reorder_url"] == f"https://{WOO}/?add-to-cart=4711&quantity=1"
    assert seen["url"] == f"https://{WOO}/produkt/schreibtisch-wachsend/"


def test_our_json_fills_reorder_url_placeholders_url_encoded() -> None:
    template = "https://shop.example/reorder?sku={sku}&qty={quantity}&p={product_id}"
    assert (
        template_reorder_url(
            template, sku="KAFFEE 1kg/ö&x", quantity=2, product_id="coffee-1", variant_id=None
        )
        == "https://shop.example/reorder?sku=KAFFEE%201kg%2F%C3%B6%26x&qty=2&p=coffee-1"
    )
    # A placeholder it uses is unknown for the item: no link at all.
    assert (
        template_reorder_url(template, sku="COFFEE-1", quantity=1, product_id=None, variant_id=None)
        is None
    )
    # No REORDER_URL: none.
    links = shop_links(
        "default", default_url=None, per_shop_urls={}, address=None, reorder_template=None
    )
    assert links.item(item())["reorder_url"] is None
    # A webhook's item (preview) works the same way as a row.
    links = shop_links(
        "default",
        default_url="https://shop.example",
        per_shop_urls={},
        address=None,
        reorder_template="https://shop.example/reorder/{sku}/{quantity}",
    )
    preview_item = ItemIn(sku="DIAPER-M-60", name="Diapers M", quantity=4)
    assert links.item(preview_item)["reorder_url"] == "https://shop.example/reorder/DIAPER-M-60/4"


def test_ids_that_are_not_numbers_make_no_platform_link() -> None:
    for platform in ("shopify", "woocommerce"):
        assert (
            reorder_url(
                platform,  # type: ignore[arg-type]
                shop_url="https://shop.example",
                template=None,
                product_id="gid://shopify/Product/1",
                variant_id="../admin",
                sku="X",
                quantity=1,
            )
            is None
        )
    # Without the shop's URL a cart link cannot be made either.
    assert shopify_link_without_url() is None


def shopify_link_without_url() -> str | None:
    return reorder_url(
        "shopify",
        shop_url=None,
        template=None,
        product_id="1",
        variant_id="2",
        sku=None,
        quantity=1,
    )


def test_catalog_urls_that_are_not_web_links_are_dropped() -> None:
    bad = product(url="javascript:alert(1)", image_url="/relative.jpg")
    seen = CatalogItem.of(bad, variant(url=None)).context()
    assert seen["url"] is None and seen["image_url"] is None


def test_rule_links_resolve_under_the_shop_url() -> None:
    links = shop_links(
        WOO,
        default_url=None,
        per_shop_urls={WOO: f"https://{WOO}"},
        address=None,
        reorder_template=None,
    )
    resolved = links.resolve(
        {"category": "/produkt-kategorie/schreibtische/", "guide": "https://help.example/desks"}
    )
    assert resolved == {
        "category": f"https://{WOO}/produkt-kategorie/schreibtische/",
        "guide": "https://help.example/desks",
    }
    assert resolved["other"] is None  # a name the rule does not give
    no_url = shop_links(
        "default", default_url=None, per_shop_urls={}, address=None, reorder_template=None
    )
    assert no_url.resolve({"category": "/c/desks"}) == NamedLinks(category=None)
