"""`aftersale import`: past orders are stored, learned from, and never mailed."""

from __future__ import annotations

import asyncio
import io
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.cli import main
from app.config import Settings
from app.events import OrderPlaced
from app.intake.history import import_command, read_shopify_csv
from app.intake.payloads import guest_customer_id
from app.intake.shopify_csv import order_events
from app.models import Customer, Message, Order, OrderItem, RepurchaseGap, WebhookDelivery
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.intake.test_shopify import NEW_SECRET, PAYLOADS, SHOP, count, payload, post_shopify
from tests.mail.test_preview import cli_env
from tests.orders.test_learned_intake import LEARNED, coffee_order
from tests.outbox.conftest import use_rules

EXPORT = PAYLOADS / "shopify_orders_export.csv"
DIAPERS_LEARNED = """
rules:
  - id: diapers-learned
    kind: transactional
    when: {event: order.created, items: {sku: ["DIAPER-*"]}}
    send: {learned: {fallback: 4w..5w, lead: 3d}}
    template: thank-you
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"shopify_secrets": [f"{SHOP}={NEW_SECRET}"]})


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    cli_env(monkeypatch, settings)


async def run(*args: str) -> int:
    # The command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(main, ["import", *args])


def jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


async def rows(runtime: Runtime, model: Any) -> list[Any]:
    async with runtime.session_factory() as session:
        return list((await session.execute(select(model).order_by(model.id))).scalars())


@pytest.mark.usefixtures("cli")
async def test_our_json_is_stored_without_messages_and_bad_lines_are_reported(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = order_created(event_id="evt-bad", email="not-an-address")
    file = jsonl(
        tmp_path / "orders.jsonl",
        order_created(event_id="evt-1", order_id="o-1", customer_id="c-1"),
        "",
        json.dumps(bad),
        order_created(event_id="evt-2", order_id="o-2", customer_id="c-2", email="b@example.org"),
        "{not json",
    )
    assert await run(str(file)) == 1  # bad lines do not stop the others
    out, err = capsys.readouterr()
    assert f"{file}:3: customer.email: value is not a valid email address" in err
    assert f"{file}:5: " in err
    assert "2 events imported, 0 already imported (skipped), 2 failed" in out
    assert (await count(runtime, Order), await count(runtime, OrderItem)) == (2, 2)
    assert await count(runtime, Customer) == 2
    assert await count(runtime, Message) == 0
    deliveries = await rows(runtime, WebhookDelivery)
    assert [(d.source, d.shop, d.delivery_id) for d in deliveries] == [
        ("import", "default", "evt-1"),
        ("import", "default", "evt-2"),
    ]
    assert all(d.customer_id is not None for d in deliveries)  # erasure finds them

    # Again: nothing changes.
    assert await run(str(file)) == 1
    assert "0 events imported, 2 already imported (skipped), 2 failed" in capsys.readouterr().out
    assert (await count(runtime, Order), await count(runtime, WebhookDelivery)) == (2, 2)
    assert await count(runtime, Message) == 0


@pytest.mark.usefixtures("cli")
async def test_imported_history_gives_the_first_live_order_a_learned_send_time(
    client: AsyncClient, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    # The rules the command reads (RULES_DIR) and the ones the app plans with.
    use_rules(runtime, settings.rules_dir, LEARNED)
    # Out of order in the file: imported oldest first, so the 14-day gap is learned.
    file = jsonl(tmp_path / "history.jsonl", coffee_order(14), coffee_order(0))
    assert await run(str(file)) == 0
    assert await count(runtime, Message) == 0
    [gap] = await rows(runtime, RepurchaseGap)
    assert round(gap.log_days, 6) == round(math.log(14), 6)

    # A customer we have never seen: with no history at all it would be the 4-week fallback.
    response = await post_event(client, coffee_order(40, customer="c-new"))
    assert response.json()["messages_planned"] == 2  # thank-you and coffee
    coffee = next(m for m in await rows(runtime, Message) if m.rule_id == "coffee")
    placed = datetime(2026, 1, 1, 10, tzinfo=UTC) + timedelta(days=40)
    assert coffee.send_at - placed < timedelta(weeks=4)


@pytest.mark.usefixtures("cli")
async def test_shopify_export_is_imported_as_orders_items_and_customers(
    client: AsyncClient,
    runtime: Runtime,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_rules(runtime, settings.rules_dir, DIAPERS_LEARNED)
    args = ["--format", "shopify-csv", "--shop", SHOP, str(EXPORT)]
    assert await run(*args) == 0
    out = capsys.readouterr().out
    assert "5 orders imported, 0 already imported (skipped), 0 failed" in out
    assert "1 without an email address (ignored)" in out  # the POS sale

    orders = {order.external_id: order for order in await rows(runtime, Order)}
    assert set(orders) == {f"567890123450{n}" for n in range(1, 6)}  # Shopify's order ids
    first, cancelled, open_ = (
        orders["5678901234501"],
        orders["5678901234504"],
        orders["5678901234505"],
    )
    assert (first.shop, first.currency, first.total, first.status) == (
        SHOP,
        "EUR",
        Decimal("49.80"),
        "fulfilled",
    )
    assert first.placed_at == datetime(2026, 1, 5, 7, 15, tzinfo=UTC)
    assert first.fulfilled_at == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
    assert (cancelled.status, cancelled.cancelled_at) == (
        "cancelled",
        datetime(2026, 2, 10, 16, 30, tzinfo=UTC),
    )
    assert open_.status == "open"
    items = [item for item in await rows(runtime, OrderItem) if item.order_id == open_.id]
    assert [(i.sku, i.name, i.quantity, i.unit_price) for i in items] == [
        ("DESK-KIDS-1", "儿童书桌 可升降", 1, Decimal("899.00")),
        ("LAMP-EYE", "护眼台灯", 2, Decimal("49.00")),
        (None, "桌面收纳盒", 1, Decimal("19.00")),
    ]
    assert items[0].attributes == {"vendor": "Grow Desk"}
    assert await count(runtime, OrderItem) == 8

    customers = {c.email: c for c in await rows(runtime, Customer)}
    assert len(customers) == 4
    anna, hanako = customers["anna.ivanova@example.org"], customers["hanako.yamada@example.jp"]
    assert anna.external_id == guest_customer_id("anna.ivanova@example.org")
    assert (anna.first_name, anna.last_name, anna.country, anna.marketing_consent) == (
        "Анна",
        "Иванова",
        "RU",
        True,
    )
    assert (hanako.first_name, hanako.last_name, hanako.marketing_consent) == (
        "花子",
        "山田",
        False,
    )
    assert await count(runtime, Message) == 0
    # Anna's two diaper orders, a month apart; the cancelled order teaches nothing.
    [gap] = await rows(runtime, RepurchaseGap)
    assert gap.order_id == orders["5678901234503"].id
    delivery_ids = {d.delivery_id for d in await rows(runtime, WebhookDelivery)}
    assert {"shopify-csv:#1001", "shopify-csv:#1001:fulfilled", "shopify-csv:#1004:cancelled"} <= (
        delivery_ids
    )

    # Importing the export again changes nothing.
    assert await run(*args) == 0
    assert "0 orders imported, 5 already imported (skipped)" in capsys.readouterr().out
    assert (await count(runtime, Order), await count(runtime, OrderItem)) == (5, 8)
    assert (await count(runtime, RepurchaseGap), await count(runtime, Message)) == (1, 0)

    # A live webhook about an imported order finds it: Shopify's order id is the same.
    cancel = payload("order_create")
    cancel.update(id=5678901234505, cancelled_at="2026-03-02T10:00:00+08:00")
    assert (await post_shopify(client, "orders/cancelled", cancel)).json()["status"] == "accepted"
    statuses = {order.external_id: order.status for order in await rows(runtime, Order)}
    assert (len(statuses), statuses["5678901234505"]) == (5, "cancelled")


@pytest.mark.usefixtures("cli")
async def test_shopify_export_needs_its_shop_and_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("--format", "shopify-csv", str(EXPORT)) == 1
    assert "--shop is required" in capsys.readouterr().err
    other = tmp_path / "customers_export.csv"
    other.write_text("First Name,Last Name,Email\nAnna,Ivanova,anna@example.org\n")
    assert await run("--format", "shopify-csv", "--shop", SHOP, str(other)) == 1
    assert "not a Shopify orders export: no 'Name', 'Created at'" in capsys.readouterr().err
    assert await run(str(tmp_path / "missing.jsonl")) == 1
    assert "No such file" in capsys.readouterr().err


def test_bad_export_orders_are_reported_at_their_first_line() -> None:
    text = EXPORT.read_text(encoding="utf-8")
    header, *lines = text.split("\n")
    broken = [
        *lines[:3],  # #1001 (its first row spans two lines: a note with a line break)
        lines[3].replace("2026-01-12 09:30:00 +0900", "12/01/2026 09:30"),  # #1002
        lines[4].replace(",1,", ",one,", 1),  # #1003: the quantity
        ",,,,",  # a row without a Name
    ]
    records, bad, without_email = read_shopify_csv("\n".join([header, *broken]) + "\n")
    assert [record.line for record in records] == [2]
    assert [(problem.line, problem.message) for problem in bad] == [
        (5, "#1002: Created at: not a time with an offset (like 2025-10-07 09:50:26 +0200)"),
        (6, "#1003: Lineitem quantity: not a whole number"),
        (7, "Name: missing"),
    ]
    assert without_email == 0


async def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    file = jsonl(tmp_path / "orders.jsonl", order_created(event_id="evt-tty"))
    for stderr, drawn in ((Terminal(), True), (io.StringIO(), False)):
        stdout = io.StringIO()
        code = await asyncio.to_thread(
            import_command,
            settings=settings,
            path=file,
            file_format="jsonl",
            shop=None,
            stdout=stdout,
            stderr=stderr,
        )
        assert code == 0
        assert ("importing [" in stderr.getvalue()) is drawn
        assert "importing" not in stdout.getvalue()


def test_export_refunds_and_customer_id_columns() -> None:
    row = {
        "Name": "#2001",
        "Email": "Mai@Example.org",
        "Financial Status": "refunded",
        "Paid at": "2026-04-01 10:00:00 +0000",
        "Created at": "2026-04-01T09:59:00+00:00",  # ISO is read too
        "Currency": "EUR",
        "Total": "10.00",
        "Lineitem quantity": "2",
        "Lineitem name": "Tea",
        "Lineitem price": "5.00",
        "Customer ID": "7001",
    }
    refunded, placed = order_events([row])
    assert (refunded.type, refunded.id) == ("order.refunded", "shopify-csv:#2001:refunded")
    assert refunded.occurred_at == datetime(2026, 4, 1, 10, tzinfo=UTC)
    assert isinstance(placed, OrderPlaced)
    assert (placed.order.id, placed.customer.id, placed.customer.marketing_consent) == (
        "#2001",  # no Id column: the Name
        "7001",
        False,
    )
    assert [(item.sku, item.quantity) for item in placed.order.items] == [(None, 2)]
