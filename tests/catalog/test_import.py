"""`aftersale catalog import`: our JSON lines and Shopify's products export, counted, with
line-numbered errors, and idempotent."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.catalog.command import BATCH, Report, import_products
from app.catalog.schemas import ProductIn
from app.catalog.service import apply_product_event
from app.cli import main
from app.config import Settings
from app.db import transaction
from app.models import Product, ProductVariant
from app.runtime import Runtime
from tests.catalog.test_platforms import PAYLOADS, SHOP, payload
from tests.mail.test_preview import cli_env

EXPORT = PAYLOADS / "shopify_products_export.csv"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    cli_env(monkeypatch, settings)


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # The command runs its own event loop, as it does from a shell.
    code = await asyncio.to_thread(main, ["catalog", "import", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


async def stored(runtime: Runtime) -> list[tuple[Product, list[ProductVariant]]]:
    async with runtime.session_factory() as session:
        products = (await session.scalars(select(Product).order_by(Product.id))).all()
        variants = (
            await session.scalars(select(ProductVariant).order_by(ProductVariant.position))
        ).all()
    return [(p, [v for v in variants if v.product_id == p.id]) for p in products]


@pytest.mark.usefixtures("cli")
async def test_our_json_lines_are_imported_with_bad_lines_named(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[dict[str, Any] | str] = [
        {"id": "COFFEE-1", "title": "Café Bourbon 1 kg", "sku": "COFFEE-1", "price": "29.00"},
        "",
        {"id": "INK-1", "title": "Patrone", "variants": [{"id": "ink-bk", "price": "gratis"}]},
        "{not json",
        {
            "handle": "tee",
            "title": "Grüner Tee",
            "categories": ["Lebensmittel > Tee"],
            "colour": "grün",
        },
    ]
    file = tmp_path / "products.jsonl"
    file.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    code, out, err = await run(capsys, str(file), "--currency", "EUR")
    assert code == 1  # bad lines do not stop the others
    assert err.splitlines() == [
        f"{file}:3: variants.0.price: Input should be a valid decimal",
        f"{file}:4: not a JSON object",
        f"{file}:5: colour: Extra inputs are not permitted",
    ]
    assert out.strip() == (
        f"{file}: 1 products added, 0 updated, 0 unchanged, 0 older than the catalog's "
        "(skipped), 3 failed; shop default"
    )
    [(product, [variant])] = await stored(runtime)
    assert (product.platform, product.currency, variant.sku) == ("custom", "EUR", "COFFEE-1")

    code, out, _ = await run(capsys, str(file), "--currency", "EUR")
    assert "0 products added, 0 updated, 1 unchanged" in out


@pytest.mark.usefixtures("cli")
async def test_shopifys_products_export_is_read_row_by_row(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(capsys, str(EXPORT), "--format", "shopify-csv", "--shop", SHOP)
    assert code == 1
    assert err.splitlines() == [
        f"{EXPORT}:7: kaputt: Variant Price: not an amount",
        f"{EXPORT}:8: Handle: missing",
    ]
    assert "2 products added, 0 updated, 0 unchanged" in out and "2 failed" in out
    (diapers, variants), (wipes, [wipe]) = await stored(runtime)
    assert (diapers.platform, diapers.external_id, diapers.handle) == (
        "shopify",
        None,  # the export has no ids: a webhook gives them
        "oko-windeln-grosse-4",
    )
    assert diapers.title == "Öko-Windeln Größe 4" and diapers.vendor == "Lillydoo"
    assert diapers.category_paths == [["Baby & Toddler", "Diapering", "Diapers"]]
    assert diapers.product_type == "Windeln" and diapers.tags == ["eco", "Windeln"]
    assert diapers.url == f"https://{SHOP}/products/oko-windeln-grosse-4"
    assert diapers.image_url is not None and diapers.image_url.endswith(
        "windeln-4.jpg?v=1760000000"
    )
    assert [(v.sku, v.title, v.price, v.in_stock, v.inventory_quantity) for v in variants] == [
        ("DIAPER-4-44", "44 Stück", Decimal("19.99"), True, 75),
        ("DIAPER-4-88", "88 Stück", Decimal("36.50"), False, 0),
    ]
    assert wipes.active is False  # Status draft
    assert (wipe.sku, wipe.title, wipe.in_stock) == ("WIPES-12", None, True)  # not tracked

    # Again: nothing changes; then the live webhook gives the product its ids.
    code, out, _ = await run(capsys, str(EXPORT), "--format", "shopify-csv", "--shop", SHOP)
    assert "0 products added, 0 updated, 2 unchanged" in out
    async with transaction(runtime.session_factory) as session:
        await apply_product_event(
            session,
            source="shopify",
            topic="products/update",
            payload=payload("shopify_product_create.json"),
            shop=SHOP,
            now=diapers.first_seen_at,
        )
    (adopted, variants), _ = await stored(runtime)
    assert adopted.id == diapers.id and adopted.external_id == "788032119674292922"
    assert [v.external_id for v in variants] == ["642667041472713922", "757650484644203962"]


@pytest.mark.usefixtures("cli")
async def test_usage_errors_name_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(capsys, str(EXPORT), "--format", "shopify-csv")
    assert (code, err.strip()) == (
        1,
        "aftersale catalog import: --shop is required with shopify-csv "
        "(e.g. my-shop.myshopify.com)",
    )
    code, _, err = await run(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 1 and "missing.jsonl: No such file or directory" in err
    orders = tmp_path / "orders.csv"
    orders.write_text("Name,Email\n#1001,a@example.org\n", encoding="utf-8")
    code, _, err = await run(capsys, str(orders), "--format", "shopify-csv", "--shop", SHOP)
    assert "not a Shopify products export: no 'Handle', 'Title', 'Variant Price' column" in err
    code, _, err = await run(capsys, str(orders), "--currency", "euro")
    assert "--currency: 'euro' is not an ISO 4217 code like EUR" in err


async def test_a_large_import_reports_progress_batch_by_batch(runtime: Runtime) -> None:
    products = [
        ProductIn(id=f"p-{n}", title=f"Artikel {n}", sku=f"SKU-{n}") for n in range(BATCH + 50)
    ]
    calls: list[tuple[str, int, int]] = []
    report = await import_products(
        runtime.session_factory,
        products,
        shop="default",
        platform="custom",
        currency=None,
        now=runtime.clock.now(),
        report=Report(),
        progress=lambda label, done, total: calls.append((label, done, total)),
    )
    assert report.counts.added == BATCH + 50
    assert calls == [("importing", BATCH, BATCH + 50), ("importing", BATCH + 50, BATCH + 50)]


async def test_an_import_links_recent_orders_waiting_for_its_products(
    runtime: Runtime, client: Any, settings: Settings
) -> None:
    from app.catalog.command import LateItems
    from app.models import Message, OrderItem
    from tests.factories import order_created, post_event
    from tests.outbox.conftest import use_rules

    use_rules(
        runtime,
        settings.rules_dir,
        """
rules:
  - id: coffee
    when:
      event: order.created
      items: {category: ["Food, Beverages & Tobacco > Beverages > Coffee"]}
    send: {after: 4w}
    template: coffee-next-variety
""",
    )
    item = {"sku": "COFFEE-1", "name": "Café Bourbon 1 kg", "quantity": 1, "unit_price": "29.00"}
    assert (await post_event(client, order_created(items=[item]))).status_code == 200
    product = ProductIn.model_validate(
        {
            "id": "bourbon",
            "title": "Café Bourbon 1 kg",
            "categories": ["Food, Beverages & Tobacco > Beverages > Coffee"],
            "sku": "COFFEE-1",
        }
    )
    late = LateItems(rules=runtime.rules.current, days=2, default_time_zone="UTC")
    for _ in range(2):  # the second import plans nothing more
        report = await import_products(
            runtime.session_factory,
            [product],
            shop="default",
            platform="custom",
            currency="EUR",
            now=runtime.clock.now(),
            report=Report(),
            late=late,
        )
    async with runtime.session_factory() as session:
        rules = (await session.scalars(select(Message.rule_id).order_by(Message.id))).all()
        linked = (await session.scalars(select(OrderItem.catalog_product_id))).all()
    assert rules == ["thank-you", "coffee"]
    assert linked[0] is not None
    assert (report.items_matched, report.messages_planned) == (0, 0)
