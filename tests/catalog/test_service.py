"""The catalog on a real database: product webhooks applied idempotently and in time order,
WooCommerce variations apart from their products, CSV rows adopted by webhooks, and the
lookups order intake makes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.catalog.schemas import ProductIn
from app.catalog.service import (
    ProductEventResult,
    apply_product_event,
    find_products_for_items,
    upsert_products,
)
from app.db import transaction
from app.models import Product, ProductVariant
from app.runtime import Runtime
from tests.catalog.test_platforms import SHOP, SITE, payload
from tests.orders.test_intake_cost import statements

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PRODUCT_ID = "788032119674292922"
SMALL, BIG = "642667041472713922", "757650484644203962"


async def apply(
    runtime: Runtime, source: str, topic: str, body: dict[str, Any], *, now: datetime = NOW
) -> ProductEventResult:
    async with transaction(runtime.session_factory) as session:
        return await apply_product_event(
            session,
            source=source,
            topic=topic,
            payload=body,
            shop=SITE if source == "woocommerce" else SHOP,
            now=now,
        )


async def catalog(runtime: Runtime) -> list[tuple[Product, list[ProductVariant]]]:
    async with runtime.session_factory() as session:
        products = (await session.scalars(select(Product).order_by(Product.id))).all()
        variants = (
            await session.scalars(select(ProductVariant).order_by(ProductVariant.position))
        ).all()
    return [(p, [v for v in variants if v.product_id == p.id]) for p in products]


def shopify_update(**changes: Any) -> dict[str, Any]:
    data = payload("shopify_product_create.json")
    data.update(changes)
    return data


async def test_a_shopify_product_is_stored_once_and_an_older_update_loses(
    runtime: Runtime,
) -> None:
    created = await apply(runtime, "shopify", "products/create", shopify_update())
    assert (created.action, created.report.added, created.product_ids) == (
        "upserted",
        1,
        (PRODUCT_ID,),
    )
    [(product, variants)] = await catalog(runtime)
    assert (product.shop, product.platform, product.external_id) == (SHOP, "shopify", PRODUCT_ID)
    assert product.category_paths == [["Baby & Toddler", "Diapering", "Diapers"]]
    assert product.tags == ["eco", "Windeln", "subscription"]
    assert product.price == Decimal("19.99") and product.active and product.in_stock
    # First seen when the shop created it, not when aftersale heard of it.
    assert product.first_seen_at == datetime(2026, 10, 2, 13, 15, 31, tzinfo=UTC)
    assert [(v.external_id, v.sku, v.in_stock) for v in variants] == [
        (SMALL, "DIAPER-4-44", True),
        (BIG, "DIAPER-4-88", False),
    ]
    written = product.updated_at

    again = await apply(runtime, "shopify", "products/update", shopify_update())
    assert again.report.unchanged == 1
    [(product, _)] = await catalog(runtime)
    assert product.updated_at == written  # a repeat writes nothing

    older = shopify_update(title="Alter Titel", updated_at="2026-11-01T00:00:00Z")
    assert (await apply(runtime, "shopify", "products/update", older)).report.stale == 1

    newer = shopify_update(updated_at="2026-11-19T08:00:00Z", tags="eco")
    newer["variants"] = [newer["variants"][1] | {"price": "34.90", "inventory_quantity": 12}]
    assert (await apply(runtime, "shopify", "products/update", newer)).report.updated == 1
    [(product, variants)] = await catalog(runtime)
    assert product.title == "Öko-Windeln Größe 4" and product.tags == ["eco"]
    # The variant the shop removed is gone; the other's price and stock changed.
    assert [(v.external_id, v.price, v.in_stock) for v in variants] == [
        (BIG, Decimal("34.90"), True)
    ]
    assert product.price == Decimal("34.90")


async def test_a_deleted_product_stays_deleted_for_a_late_update(runtime: Runtime) -> None:
    await apply(runtime, "shopify", "products/create", shopify_update())
    removed = await apply(runtime, "shopify", "products/delete", {"id": int(PRODUCT_ID)}, now=NOW)
    assert removed.action == "deleted"
    late = shopify_update(updated_at="2026-11-19T08:00:00Z")  # before NOW: written earlier
    assert (await apply(runtime, "shopify", "products/update", late)).report.stale == 1
    [(product, variants)] = await catalog(runtime)
    assert product.deleted_at == NOW and len(variants) == 2  # kept: old orders resolve
    unknown = await apply(runtime, "shopify", "products/delete", {"id": 999999999999999999})
    assert unknown.action == "unknown"


async def test_woocommerce_variations_arrive_apart_and_before_their_product(
    runtime: Runtime,
) -> None:
    variation = await apply(
        runtime, "woocommerce", "product.created", payload("woocommerce_variation.json")
    )
    assert (variation.action, variation.report.added, variation.product_ids) == (
        "upserted",
        1,
        ("7301",),
    )
    [(placeholder, [variant])] = await catalog(runtime)
    assert placeholder.title == "Kinderschreibtisch „Lernfix“ - Eiche"
    assert (variant.external_id, variant.sku, variant.title) == (
        "7303",
        "DESK-LERNFIX-EICHE",
        "Eiche",
    )

    product = payload("woocommerce_product_variable.json")
    assert (await apply(runtime, "woocommerce", "product.updated", product)).report.updated == 1
    [(stored, [variant])] = await catalog(runtime)
    assert stored.id == placeholder.id and stored.title == "Kinderschreibtisch „Lernfix“"
    assert stored.vendor == "Möbelwerk Süd" and stored.category_paths == [
        ["schreibtische"],
        ["kinderzimmer"],
    ]
    assert variant.external_id == "7303"  # listed in `variations`: kept

    # The shop deletes variation 7303: the product no longer lists it.
    product["variations"] = [7302]
    product["date_modified_gmt"] = "2026-11-11T09:00:00"
    await apply(runtime, "woocommerce", "product.updated", product)
    [(_, variants)] = await catalog(runtime)
    assert variants == []


async def test_woocommerce_trash_and_restore(runtime: Runtime) -> None:
    simple = payload("woocommerce_product_simple.json")
    await apply(runtime, "woocommerce", "product.created", simple)
    await apply(runtime, "woocommerce", "product.deleted", {"id": 794})
    [(product, _)] = await catalog(runtime)
    assert product.deleted_at == NOW
    restored = await apply(runtime, "woocommerce", "product.restored", simple | {"status": "draft"})
    assert restored.report.updated == 1
    [(product, [variant])] = await catalog(runtime)
    assert product.deleted_at is None and product.active is False
    assert (variant.external_id, variant.sku) == ("794", "INK-XL-BK")

    # A variation trashed by its own id goes from its product.
    await apply(runtime, "woocommerce", "product.created", payload("woocommerce_variation.json"))
    assert (await apply(runtime, "woocommerce", "product.deleted", {"id": 7303})).action == (
        "deleted"
    )
    assert [len(variants) for _, variants in await catalog(runtime)] == [1, 0]


async def test_a_product_known_by_handle_takes_the_webhooks_ids(runtime: Runtime) -> None:
    # What Shopify's CSV export gives: a handle, SKUs, no ids, no creation time.
    from_csv = ProductIn.model_validate(
        {
            "handle": "oko-windeln-grosse-4",
            "title": "Öko-Windeln Größe 4",
            "variants": [
                {"sku": "DIAPER-4-44", "title": "44 Stück", "price": "19.99"},
                {"sku": "DIAPER-4-88", "title": "88 Stück", "price": "36.50"},
            ],
        }
    )
    async with transaction(runtime.session_factory) as session:
        report = await upsert_products(
            session, shop=SHOP, platform="shopify", products=[from_csv], now=NOW
        )
    assert report.added == 1
    [(before, csv_variants)] = await catalog(runtime)
    assert before.external_id is None and before.first_seen_at == NOW

    await apply(runtime, "shopify", "products/update", shopify_update())
    [(after, variants)] = await catalog(runtime)
    assert after.id == before.id and after.external_id == PRODUCT_ID
    assert after.first_seen_at < NOW  # the shop's created_at is earlier
    assert [v.id for v in variants] == [v.id for v in csv_variants]
    assert [v.external_id for v in variants] == [SMALL, BIG]

    # The same CSV again keeps the ids the webhook gave.
    async with transaction(runtime.session_factory) as session:
        report = await upsert_products(
            session, shop=SHOP, platform="shopify", products=[from_csv], now=NOW
        )
    [(again, variants)] = await catalog(runtime)
    assert again.external_id == PRODUCT_ID
    assert [v.external_id for v in variants] == [SMALL, BIG]


async def test_a_product_twice_in_one_batch_is_one_product(runtime: Runtime) -> None:
    first = ProductIn.model_validate({"id": "p-1", "title": "Kaffee", "sku": "COFFEE-1"})
    second = first.model_copy(update={"title": "Kaffee 1 kg"})
    async with transaction(runtime.session_factory) as session:
        report = await upsert_products(
            session, shop="default", platform="custom", products=[first, second], now=NOW
        )
    assert (report.added, report.updated) == (1, 1)
    [(product, [variant])] = await catalog(runtime)
    assert product.title == "Kaffee 1 kg" and variant.external_id == "p-1"


@pytest.fixture
async def stocked(runtime: Runtime) -> None:
    await apply(runtime, "shopify", "products/create", shopify_update())
    await apply(
        runtime, "woocommerce", "product.created", payload("woocommerce_product_simple.json")
    )
    await apply(
        runtime, "woocommerce", "product.created", payload("woocommerce_product_variable.json")
    )
    # An older, deleted product that used the same SKU.
    old = shopify_update(id=111111111111111111, handle="alt", created_at=None)
    old["variants"] = [old["variants"][0] | {"id": 222222222222222222}]
    await apply(runtime, "shopify", "products/create", old)
    await apply(runtime, "shopify", "products/delete", {"id": 111111111111111111})


@pytest.mark.usefixtures("stocked")
async def test_items_resolve_by_variant_id_then_product_id_then_sku(runtime: Runtime) -> None:
    async with runtime.session_factory() as session:
        with statements(runtime) as sent:
            shopify = await find_products_for_items(
                session,
                shop=SHOP,
                items=[
                    (PRODUCT_ID, BIG, "renamed-sku"),
                    (None, None, "DIAPER-4-44"),  # the live product, not the deleted one
                    (None, None, "NOPE"),
                    (None, None, None),
                ],
            )
        assert len(sent) == 1  # a second only for items known by product id alone
        [unknown_ids] = await find_products_for_items(
            session, shop=SHOP, items=[("404", "405", None)]
        )
        woo = await find_products_for_items(
            session,
            shop=SITE,
            items=[
                ("794", None, "INK-XL-BK"),  # a simple product: its own variant
                ("7301", "7302", None),  # a variation not in the catalog yet
                ("794", None, None),
            ],
        )
        # Shops are apart: Shopify's SKU is not the WooCommerce site's.
        other = await find_products_for_items(
            session, shop=SITE, items=[(None, None, "DIAPER-4-44")]
        )
    by_variant, by_sku, unknown, empty = shopify
    assert by_variant is not None and by_variant.matched_by == "variant_id"
    assert by_variant.variant is not None and by_variant.variant.external_id == BIG
    assert by_sku is not None and by_sku.matched_by == "sku"
    assert by_sku.product.external_id == PRODUCT_ID and by_sku.product.deleted_at is None
    assert unknown is None and empty is None and unknown_ids is None
    simple, variable, simple_again = woo
    assert simple is not None and simple.matched_by == "product_id"
    assert simple.variant is not None and simple.variant.sku == "INK-XL-BK"
    assert variable is not None and variable.matched_by == "product_id"
    assert variable.product.title == "Kinderschreibtisch „Lernfix“" and variable.variant is None
    assert simple_again is not None and simple_again.product.external_id == "794"
    assert other == [None]


@pytest.mark.usefixtures("stocked")
async def test_a_deleted_product_still_resolves_by_its_variant_id(runtime: Runtime) -> None:
    async with runtime.session_factory() as session:
        [match] = await find_products_for_items(
            session, shop=SHOP, items=[(None, "222222222222222222", "DIAPER-4-44")]
        )
    assert match is not None and match.product.external_id == "111111111111111111"
    assert match.product.deleted_at is not None
