"""What templates see of an order: `order.number` is what the customer knows, `order.id` the
platform's id, `order.attributes` the order's own fields."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from app.mail.context import build_context
from app.models import Customer, Order, OrderItem

SENT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def context(order: Order) -> dict:  # type: ignore[type-arg]
    item = OrderItem(
        sku="DIAPER-M-60",
        name="Diapers M",
        category="baby/diapers",
        quantity=2,
        unit_price=Decimal("24.90"),
        tags=[],
        attributes={"Engraving": "Маша"},
    )
    customer = Customer(first_name="Анна", last_name="Иванова", locale="ru")
    return build_context(
        customer=customer, order=order, items=[item], send_at=SENT, shop_name="Shop"
    )


def test_the_number_the_customer_knows_and_the_platform_id() -> None:
    order = Order(
        external_id="820982911946154508",
        number="1042",
        total=Decimal("49.80"),
        currency="EUR",
        placed_at=SENT,
        attributes={"gift_message": "С днём рождения!"},
    )
    seen = context(order)["order"]
    assert (seen["id"], seen["number"]) == ("820982911946154508", "1042")
    assert seen["attributes"] == {"gift_message": "С днём рождения!"}
    assert seen["items"][0]["attributes"] == {"Engraving": "Маша"}


def test_without_a_number_the_id_is_the_number() -> None:
    # Our own JSON without `order.number`, and orders stored before numbers were kept.
    order = Order(external_id="A-77", number=None, total=None, currency=None, attributes={})
    assert context(order)["order"]["number"] == "A-77"
