"""One customer per person: found by the shop's customer id, else by the address within the
shop, so an imported history, guest checkouts and live webhooks are one customer."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.cli import main
from app.config import Settings
from app.intake.payloads import guest_customer_id
from app.models import Customer, Message, Order, RepurchaseGap
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.intake.test_shopify import NEW_SECRET, PAYLOADS, SHOP, payload, post_shopify
from tests.mail.test_preview import cli_env
from tests.outbox.conftest import use_rules

EXPORT_HEADER = (PAYLOADS / "shopify_orders_export.csv").read_text(encoding="utf-8").split("\n")[0]
ANNA = "anna.ivanova@example.org"
# Anna's account on the shop (the live payload's customer.id).
ANNA_ID = "115310627314723954"
RULES = """
rules:
  - id: welcome-first
    kind: transactional
    when: {event: order.created, first_order: true}
    send: {after: 0m}
    template: thank-you
  - id: thanks-again
    kind: transactional
    when: {event: order.created, first_order: false}
    send: {after: 0m}
    template: thank-you
  - id: diapers-restock
    kind: transactional
    when: {event: order.created, items: {sku: ["DIAPER-*"]}}
    send: {after: 1w}
    skip_if: [rebought_same_sku]
    template: diapers-restock
  - id: diapers-learned
    kind: transactional
    when: {event: order.created, items: {sku: ["DIAPER-*"]}}
    send: {learned: {fallback: 4w..5w, lead: 3d}}
    template: thank-you
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"shopify_secrets": [f"{SHOP}={NEW_SECRET}"]})


def export(path: Path, orders: list[tuple[str, str, str]]) -> Path:
    """Shopify's "Export orders" CSV of Anna's diaper orders: (Name, Id, Created at)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_HEADER.split(","), extrasaction="ignore")
    writer.writeheader()
    for name, order_id, created in orders:
        writer.writerow(
            {
                "Name": name,
                "Email": ANNA,
                "Financial Status": "paid",
                "Paid at": created,
                "Fulfillment Status": "fulfilled",
                "Accepts Marketing": "yes",
                "Currency": "EUR",
                "Subtotal": "24.90",
                "Total": "24.90",
                "Created at": created,
                "Lineitem quantity": "1",
                "Lineitem name": "Подгузники M, 60 шт.",
                "Lineitem price": "24.90",
                "Lineitem sku": "DIAPER-M-60",
                "Billing Name": "Анна Иванова",
                "Billing Country": "RU",
                "Id": order_id,
                "Vendor": "Softy",
            }
        )
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


async def test_an_imported_history_and_a_live_order_are_one_customer(
    client: AsyncClient,
    runtime: Runtime,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cli_env(monkeypatch, settings)
    use_rules(runtime, settings.rules_dir, RULES)
    file = export(
        tmp_path / "orders_export.csv",
        [
            ("#1001", "5678901234501", "2026-09-11 10:15:00 +0300"),
            ("#1002", "5678901234502", "2026-09-25 10:15:00 +0300"),
            ("#1003", "5678901234503", "2026-10-09 10:15:00 +0300"),
            # Placed after the live order below, whose webhook comes after the import.
            ("#1043", "5678901234543", "2026-12-04 10:15:00 +0300"),
        ],
    )
    args = ["import", "--format", "shopify-csv", "--shop", SHOP, str(file)]
    assert await asyncio.to_thread(main, args) == 0
    async with runtime.session_factory() as session:
        (imported,) = (await session.execute(select(Customer))).scalars()
    # The export has no customer ids: keyed by address, as a guest checkout is.
    assert imported.external_id == guest_customer_id(ANNA)

    # Live: Anna's order #1042 with her account, her address typed differently.
    live = payload("order_create")
    live["email"] = live["contact_email"] = "  Anna.Ivanova@Example.ORG "
    live["customer"]["email"] = " ANNA.IVANOVA@example.org"
    response = await post_shopify(client, "orders/create", live)
    assert response.json()["status"] == "accepted"

    async with runtime.session_factory() as session:
        customers = (await session.execute(select(Customer))).scalars().all()
        orders = (await session.execute(select(Order))).scalars().all()
        messages = (await session.execute(select(Message))).scalars().all()
        gaps = (await session.execute(select(RepurchaseGap))).scalars().all()
    # One person, one customer, now under her account's id, with all 5 orders.
    assert [(c.id, c.external_id, c.email) for c in customers] == [(imported.id, ANNA_ID, ANNA)]
    assert len(orders) == 5 and {order.customer_id for order in orders} == {imported.id}
    planned = {message.rule_id: message for message in messages}
    # Not her first order.
    assert "welcome-first" not in planned and planned["thanks-again"].status == "scheduled"
    # She bought the same diapers again after #1042 (#1043, imported): no restock reminder.
    restock = planned["diapers-restock"]
    assert (restock.status, restock.status_reason) == ("skipped", "rebought_same_sku")
    # Learned timing saw every order: a gap for each after the first, all hers.
    by_order = {order.id: order.external_id for order in orders}
    assert sorted(by_order[gap.order_id] for gap in gaps) == [
        "5678901234502",
        "5678901234503",
        "5678901234543",
        "820982911946154508",
    ]
    assert {gap.customer_id for gap in gaps} == {imported.id}


async def test_guest_checkouts_and_the_account_of_one_address_are_one_customer(
    client: AsyncClient, runtime: Runtime
) -> None:
    # A guest checkout first (our JSON, a guest id), then orders with the shop's customer id.
    guest = order_created(customer_id=guest_customer_id(ANNA), email=ANNA, order_id="o-1")
    await post_event(client, guest)
    account = order_created(customer_id="c-77", email=" Anna.Ivanova@EXAMPLE.org", order_id="o-2")
    assert (await post_event(client, account)).json()["status"] == "accepted"
    # A later guest checkout of the same address joins the account (it keeps its id).
    again = order_created(customer_id=guest_customer_id(ANNA), email=ANNA, order_id="o-3")
    await post_event(client, again)
    async with runtime.session_factory() as session:
        customers = (await session.execute(select(Customer))).scalars().all()
        owners = set((await session.execute(select(Order.customer_id))).scalars())
    assert [(c.external_id, c.email) for c in customers] == [("c-77", ANNA)]
    assert owners == {customers[0].id}


async def test_an_erased_customer_is_not_found_by_address(
    client: AsyncClient, runtime: Runtime, api: Any
) -> None:
    await post_event(client, order_created(customer_id="c-1", email=ANNA, order_id="o-1"))
    assert (await client.delete("/api/v1/customers/c-1", headers=api.headers)).status_code == 200
    # An order of the address placed before the erasure is about the erased person: ignored
    # (docs/privacy.md). One placed after it is a new customer's.
    late = order_created(customer_id="c-2", email=ANNA, order_id="o-late")
    assert (await post_event(client, late)).json()["status"] == "ignored"
    after = order_created(
        customer_id="c-2",
        email=ANNA,
        order_id="o-2",
        created_at="2026-11-20T11:00:00Z",
        occurred_at="2026-11-20T11:00:00Z",
    )
    assert (await post_event(client, after)).json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        customers = (await session.execute(select(Customer).order_by(Customer.id))).scalars()
        seen = [(c.external_id, c.email, c.deleted_at is not None) for c in customers]
    # The erased one keeps no id of the shop's either.
    assert seen == [("erased:1", None, True), ("c-2", ANNA, False)]
