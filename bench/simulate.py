"""How fast `aftersale simulate` replays orders, against reading and validating them alone.

Writes N synthetic orders (a year of a shop: diapers and baby food, printer cartridges,
coffee, kids' furniture and other goods; repeat customers; fulfilments, some cancellations
and refunds, customer updates and deletions; birthdays and children's birth dates) as
webhook bodies to a temporary ORDERS.jsonl, then times, with the shipped rules/ folder:

  (a) baseline: reading and validating the lines alone;
  (b) simulate: the same, plus the replay and the JSON Lines output.

    python bench/simulate.py [--orders 50000] [--seed 7] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.config import ROOT
from app.intake.jsonl import parse_lines
from app.rules.loader import load_rules
from app.simulate.command import paused_gc
from app.simulate.replay import simulate
from app.simulate.report import json_lines

START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)

# (weight, sku choices, category, name, unit price, most units per line)
PRODUCTS: list[tuple[float, list[str], str, str, str, int]] = [
    (0.22, ["DIAPER-S-60", "DIAPER-M-60", "DIAPER-L-48"], "baby/diapers", "Diapers", "24.90", 4),
    (0.08, ["FOOD-APPLE-6", "FOOD-CARROT-6"], "baby/food", "Baby food", "7.50", 3),
    (0.15, ["CART-BK-12", "CART-C-12", "CART-M-12"], "office/cartridges", "Cartridge", "39.00", 3),
    (
        0.25,
        ["COFFEE-ETH-1K", "COFFEE-COL-1K", "COFFEE-BRA-1K"],
        "coffee/beans",
        "Coffee",
        "19.00",
        2,
    ),
    (0.10, ["BED-1", "DESK-1", "CHAIR-2"], "kids/furniture", "Kids furniture", "249.00", 1),
    (0.20, ["TOY-CAR", "BOOK-ABC", "LAMP-3"], "home/other", "Other", "12.00", 2),
]
ZONES = ["Europe/Berlin", "Europe/Moscow", "America/New_York", "UTC", None]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Shop:
    """Synthetic customers and their orders, as webhook bodies."""

    def __init__(self, orders: int, rng: random.Random) -> None:
        self.rng = rng
        self.customer_count = max(1, orders // 3)  # about three orders per customer
        self.customers: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[datetime, dict[str, Any]]] = []
        self.serial = 0

    def customer(self, number: int) -> dict[str, Any]:
        known = self.customers.get(number)
        if known is not None:
            return known
        rng = self.rng
        profile: dict[str, Any] = {
            "id": f"c-{number}",
            "email": f"customer{number}@example.org",
            "first_name": "Anna",
            "locale": rng.choice(["en", "ru", "de-DE"]),
            "time_zone": rng.choice(ZONES),
            "marketing_consent": rng.random() < 0.8,
            "attributes": {},
        }
        if rng.random() < 0.4:
            profile["birthday"] = str(date(1960, 1, 1) + timedelta(days=rng.randrange(16_000)))
        if rng.random() < 0.3:
            births = [date(2017, 1, 1) + timedelta(days=rng.randrange(3000)) for _ in range(2)]
            profile["attributes"] = {"children": [{"birth_date": str(day)} for day in births]}
        self.customers[number] = profile
        return profile

    def add(self, at: datetime, body: dict[str, Any]) -> None:
        self.serial += 1
        body = {"id": f"evt-{self.serial}", "occurred_at": iso(at), **body}
        self.events.append((at, body))

    def order(self) -> None:
        rng = self.rng
        # Skewed towards low numbers: a few customers order every week or two, most now
        # and then.
        number = int(self.customer_count * rng.random() ** 1.5)
        customer = self.customer(number)
        placed = START + YEAR * rng.random()
        order_id = str(100_000_000 + self.serial)
        items = [self.item() for _ in range(1 if rng.random() < 0.7 else 2)]
        total = sum(float(item["unit_price"]) * item["quantity"] for item in items)
        self.add(
            placed + timedelta(seconds=rng.randrange(120)),
            {
                "type": "order.created",
                "order": {
                    "id": order_id,
                    "created_at": iso(placed),
                    "currency": "EUR",
                    "total": f"{total:.2f}",
                    "items": items,
                },
                "customer": customer,
            },
        )
        fate = rng.random()
        if fate < 0.03:
            self.add(placed + timedelta(hours=rng.uniform(1, 48)), closed("cancelled", order_id))
        elif fate < 0.8:
            self.add(placed + timedelta(days=rng.uniform(1, 3)), closed("fulfilled", order_id))
            if fate < 0.04:
                self.add(placed + timedelta(days=rng.uniform(5, 20)), closed("refunded", order_id))
        if rng.random() < 0.03:  # a consent change, some weeks later
            changed = {**customer, "marketing_consent": not customer["marketing_consent"]}
            self.customers[number] = changed
            at = placed + timedelta(days=rng.uniform(1, 60))
            self.add(at, {"type": "customer.updated", "customer": changed})
        if rng.random() < 0.002:
            at = placed + timedelta(days=rng.uniform(1, 90))
            self.add(at, {"type": "customer.deleted", "customer": {"id": customer["id"]}})

    def item(self) -> dict[str, Any]:
        weights = [product[0] for product in PRODUCTS]
        _, skus, category, name, price, most = self.rng.choices(PRODUCTS, weights)[0]
        return {
            "sku": self.rng.choice(skus),
            "name": name,
            "category": category,
            "quantity": self.rng.randint(1, most),
            "unit_price": price,
        }


def closed(kind: str, order_id: str) -> dict[str, Any]:
    return {"type": f"order.{kind}", "order": {"id": order_id}}


def write_orders(path: Path, orders: int, seed: int) -> int:
    shop = Shop(orders, random.Random(seed))
    for _ in range(orders):
        shop.order()
    shop.events.sort(key=lambda event: event[0])
    with path.open("w", encoding="utf-8") as out:
        for _, body in shop.events:
            out.write(json.dumps(body, separators=(",", ":")) + "\n")
    return len(shop.events)


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        # CPU time, not wall time: a busy machine slows a run down without making it slower.
        began = time.process_time()
        result = run()
        best = min(best, time.process_time() - began)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="take the best of this many runs")
    args = parser.parse_args()
    rules = load_rules(ROOT / "rules")
    assert not rules.errors, rules.errors
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.jsonl"
        events = write_orders(path, args.orders, args.seed)

        # Both as `aftersale simulate` runs them: with the garbage collector paused.
        def baseline() -> object:
            with paused_gc():
                parsed, bad = parse_lines(path.read_bytes().split(b"\n"))
            assert not bad, bad[:3]
            return parsed

        def full() -> object:
            with paused_gc():
                parsed, bad = parse_lines(path.read_bytes().split(b"\n"))
                assert not bad, bad[:3]
                result = simulate(parsed, rules=rules, default_time_zone="UTC")
                return result, sum(len(line) for line in json_lines(result))

        read_seconds, _ = best_of(args.repeat, baseline)
        full_seconds, outcome = best_of(args.repeat, full)
    result = outcome[0]  # type: ignore[index]
    print(
        f"{args.orders:,} orders ({events:,} events, {len(result.outcomes):,} messages) "
        f"with the rules in {ROOT / 'rules'}; CPU time, best of {args.repeat}"
    )
    read_rate, full_rate = args.orders / read_seconds, args.orders / full_seconds
    print(f"(a) read and validate only: {read_seconds:6.2f} s  {read_rate:9,.0f} orders/s")
    print(f"(b) simulate, JSON output:  {full_seconds:6.2f} s  {full_rate:9,.0f} orders/s")
    print(
        f"simulate: ours {full_rate:,.0f} orders/s, baseline {read_rate:,.0f} orders/s "
        f"(read and validate only), ratio {full_rate / read_rate:.2f} (goal: 20,000 orders/s)"
    )


if __name__ == "__main__":
    main()
