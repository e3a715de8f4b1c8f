"""Recommendations: how often a customer later buys one of the 3 products recommended to them.

A synthetic shop (seeded) with the structure real order histories have: categories with a
few "taste groups" each (customers stick to one or two), popular and unpopular products
(Zipf), complementary products bought after or with each other (beans → grinder, filters),
repeat purchases, and products launched along the way. Orders come over two years; the
history is split in time. For every customer who ordered both before and after the split,
the items of their last order before it are the seeds (what a cross-sell mail is about),
and each strategy recommends 3 products with the dispatcher's own ranking
(app/catalog/recommendations.py), from purchases before the split only, owned products
excluded. A hit: the customer buys one of the 3 within the 90 days after the split.

- ours: `from: co_purchase` (co-purchase counts with recency decay, then the category's
  best sellers);
- `same_category` and `new_arrivals`, for reference;
- baseline: the shop's best sellers (the same weighted counts), owned ones excluded.

Then the same history goes into a database (SQLite in a temporary file, or
`--database-url`), and the dispatcher's path (`Recommender.pick`, app/catalog/recommender.py)
picks for the same customers in batches of 100: its hit rate (it reads bounded samples: the
latest buyers of each seed, the latest purchases for best sellers) and what a batch costs,
with an empty cache and with a warm one.

    python bench/recommendations.py [--customers 6000] [--seed 7] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.recommendations import (
    ProductCard,
    Purchase,
    Weighting,
    best_seller_scores,
    co_purchase_by_seed,
    combined,
    recommend,
    top,
)
from app.catalog.recommender import Recommender, RecommendRequest
from app.db import create_engine, create_session_factory
from app.models import Customer as CustomerRow
from app.models import Order, OrderItem, Product, ProductVariant
from app.rules.model import Recommend

# The bench folder is not a package: its shared modules are imported from beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from outbox_data import catch_up_sequences, insert_rows, reset_schema

START = datetime(2025, 1, 1, tzinfo=UTC)
SPLIT = START + timedelta(days=600)
TEST_WINDOW = timedelta(days=90)
CATEGORIES = ("coffee", "tea", "baby-food", "diapers", "ink", "paper", "toys", "kitchen")
GROUPS_PER_CATEGORY = 4
PRODUCTS_PER_GROUP = 6
COUNT = 3


@dataclass
class Shop:
    cards: dict[int, ProductCard]
    group_of: dict[int, tuple[int, int]]
    members: dict[tuple[int, int], list[int]]
    complements: dict[int, list[int]]
    launched: dict[int, datetime]
    popularity: dict[int, float]


@dataclass
class Customer:
    id: int
    orders: list[tuple[datetime, list[int]]] = field(default_factory=list)


def zipf_weights(count: int, rng: random.Random) -> list[float]:
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    return [1 / rank**1.1 for rank in ranks]


def make_shop(rng: random.Random) -> Shop:
    cards: dict[int, ProductCard] = {}
    group_of: dict[int, tuple[int, int]] = {}
    members: dict[tuple[int, int], list[int]] = defaultdict(list)
    launched: dict[int, datetime] = {}
    key = 0
    for category, name in enumerate(CATEGORIES):
        for group in range(GROUPS_PER_CATEGORY):
            for _ in range(PRODUCTS_PER_GROUP):
                key += 1
                # Most products exist from the start; one in eight launches later.
                at = START if rng.random() < 0.875 else START + timedelta(days=rng.uniform(0, 680))
                launched[key] = at
                cards[key] = ProductCard(
                    key=key,
                    title=f"{name} {group}-{key}",
                    sku=f"{name.upper()}-{key}",
                    categories=((name, f"group-{group}"),),
                    available=rng.random() > 0.05,  # a few out of stock at the split
                    first_seen_at=at,
                )
                group_of[key] = (category, group)
                members[(category, group)].append(key)
    keys = list(cards)
    popularity = dict(zip(keys, zipf_weights(len(keys), rng), strict=True))
    complements: dict[int, list[int]] = {}
    for product in keys:
        category, group = group_of[product]
        # One complement in the same group, one in a linked category (beans → kitchen).
        linked = (category + 1 + category % 3) % len(CATEGORIES)
        other_group = rng.randrange(GROUPS_PER_CATEGORY)
        complements[product] = [
            rng.choice(members[(category, group)]),
            rng.choice(members[(linked, other_group)]),
        ]
    return Shop(cards, group_of, dict(members), complements, launched, popularity)


def weighted_choice(options: list[int], weights: dict[int, float], rng: random.Random) -> int:
    return rng.choices(options, weights=[weights[option] for option in options])[0]


def make_customers(shop: Shop, count: int, rng: random.Random) -> list[Customer]:
    keys = list(shop.cards)
    category_weights = zipf_weights(len(CATEGORIES), rng)
    customers = []
    for number in range(count):
        home = rng.choices(range(len(CATEGORIES)), weights=category_weights)[0]
        tastes = [(home, rng.randrange(GROUPS_PER_CATEGORY))]
        if rng.random() < 0.4:  # some have a second interest
            tastes.append((rng.randrange(len(CATEGORIES)), rng.randrange(GROUPS_PER_CATEGORY)))
        customer = Customer(number)
        at = START + timedelta(days=rng.uniform(0, 650))
        bought: list[int] = []
        end = SPLIT + TEST_WINDOW
        while at < end:
            basket: list[int] = []
            for _ in range(rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]):
                roll = rng.random()
                if bought and roll < 0.2:  # a repeat purchase
                    choice = rng.choice(bought)
                elif (bought or basket) and roll < 0.45:  # a complement of something bought
                    choice = rng.choice(shop.complements[rng.choice(bought + basket)])
                elif roll < 0.85:  # their taste
                    choice = weighted_choice(shop.members[rng.choice(tastes)], shop.popularity, rng)
                else:  # what everybody buys
                    choice = weighted_choice(keys, shop.popularity, rng)
                if shop.launched[choice] <= at and choice not in basket:
                    basket.append(choice)
            if basket:
                customer.orders.append((at, basket))
                bought.extend(basket)
            at += timedelta(days=rng.expovariate(1 / 70))
        customers.append(customer)
    return customers


@dataclass
class Score:
    hits: int = 0
    judged: int = 0

    @property
    def rate(self) -> float:
        return self.hits / self.judged if self.judged else 0.0


def evaluate(shop: Shop, customers: list[Customer]) -> tuple[dict[str, Score], float, int]:
    weighting = Weighting(half_life_days=90, lookback_days=365)
    history = [
        Purchase(customer.id, product, at)
        for customer in customers
        for at, basket in customer.orders
        if at < SPLIT
        for product in basket
    ]
    best = top(best_seller_scores(history, now=SPLIT, weighting=weighting), 500)
    # Only what was launched by the split can be shown then.
    cards = {key: card for key, card in shop.cards.items() if shop.launched[key] <= SPLIT}
    newest = sorted(cards, key=lambda key: shop.launched[key], reverse=True)
    by_seed = co_purchase_by_seed(history, seeds=list(cards), now=SPLIT, weighting=weighting)
    scores = {name: Score() for name in ("co_purchase", "same_category", "new_arrivals", "best")}
    began = time.perf_counter()
    picks = 0
    for customer in customers:
        before = [(at, basket) for at, basket in customer.orders if at < SPLIT]
        after = {
            product
            for at, basket in customer.orders
            if SPLIT <= at < SPLIT + TEST_WINDOW
            for product in basket
        }
        if not before or not after:
            continue
        seeds = list(dict.fromkeys(before[-1][1]))
        owned = {product for _, basket in before for product in basket}
        for name in scores:
            picked = recommend(
                source="same_category" if name == "best" else name,  # type: ignore[arg-type]
                count=COUNT,
                seeds=[] if name == "best" else seeds,
                products=cards,
                co_purchase=combined(by_seed, seeds),
                best_sellers=best,
                newest=newest,
                owned=owned,
            )
            picks += 1
            scores[name].judged += 1
            scores[name].hits += any(card.key in after for card in picked)
    elapsed = time.perf_counter() - began
    return scores, elapsed, picks


def judged(customers: list[Customer]) -> list[tuple[Customer, list[int], set[int]]]:
    """Customers who ordered before and after the split: their seeds and later purchases."""
    found = []
    for customer in customers:
        before = [basket for at, basket in customer.orders if at < SPLIT]
        after = {
            product
            for at, basket in customer.orders
            if SPLIT <= at < SPLIT + TEST_WINDOW
            for product in basket
        }
        if before and after:
            found.append((customer, list(dict.fromkeys(before[-1])), after))
    return found


async def store(engine: AsyncEngine, shop: Shop, customers: list[Customer]) -> None:
    """The catalog and the orders before the split, as intake would have stored them."""
    await reset_schema(engine)
    stamp = {"created_at": START, "updated_at": START}
    products, variants, people, orders, items = [], [], [], [], []
    for key, card in shop.cards.items():
        available = card.available or shop.launched[key] > SPLIT
        products.append(
            {
                "id": key,
                "shop": "default",
                "platform": "custom",
                "external_id": str(key),
                "title": card.title,
                "category_paths": [list(path) for path in card.categories],
                "tags": [],
                "url": f"https://shop.example/products/{key}",
                "active": shop.launched[key] <= SPLIT,
                "in_stock": available,
                "first_seen_at": shop.launched[key],
                **stamp,
            }
        )
        variants.append(
            {
                "id": key,
                "product_id": key,
                "shop": "default",
                "external_id": str(key),
                "sku": card.sku,
                "in_stock": available,
                "position": 0,
                **stamp,
            }
        )
    order_id = item_id = 0
    for customer in customers:
        people.append(
            {
                "id": customer.id + 1,
                "shop": "default",
                "external_id": f"c-{customer.id}",
                "tags": [],
                "marketing_consent": True,
                "attributes": {},
                "source_updated_at": START,
                **stamp,
            }
        )
        for at, basket in customer.orders:
            if at >= SPLIT:
                continue
            order_id += 1
            orders.append(
                {
                    "id": order_id,
                    "shop": "default",
                    "external_id": str(order_id),
                    "customer_id": customer.id + 1,
                    "status": "open",
                    "placed_at": at,
                    "refunds": [],
                    "discount_codes": [],
                    **stamp,
                }
            )
            for position, product in enumerate(basket):
                item_id += 1
                items.append(
                    {
                        "id": item_id,
                        "order_id": order_id,
                        "position": position,
                        "sku": shop.cards[product].sku,
                        "name": shop.cards[product].title,
                        "tags": [],
                        "quantity": 1,
                        "attributes": {},
                    }
                )
    async with engine.begin() as connection:
        for model, rows in (
            (Product, products),
            (ProductVariant, variants),
            (CustomerRow, people),
            (Order, orders),
            (OrderItem, items),
        ):
            await insert_rows(connection, model.__table__, rows)  # type: ignore[arg-type]
        await catch_up_sequences(connection)
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a load: plans need the tables' statistics.
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))


async def through_database(
    url: str, shop: Shop, customers: list[Customer]
) -> tuple[Score, list[float]]:
    """The dispatcher's path over the same customers, 100 a batch: hits, and each batch's
    seconds (the first with an empty cache)."""
    engine = create_engine(url)
    try:
        await store(engine, shop, customers)
        sessions = create_session_factory(engine)
        recommender = Recommender(
            weighting=Weighting(half_life_days=90, lookback_days=365), cache_seconds=600
        )
        spec = Recommend(count=COUNT, from_="co_purchase", exclude="owned")
        cases = judged(customers)
        score, seconds = Score(), []
        for start in range(0, len(cases), 100):
            batch = cases[start : start + 100]
            requests = [
                RecommendRequest(
                    key=customer.id,
                    shop="default",
                    customer_id=customer.id + 1,
                    spec=spec,
                    items=[(None, None, shop.cards[seed].sku) for seed in seeds],
                )
                for customer, seeds, _ in batch
            ]
            began = time.perf_counter()
            async with sessions() as session:
                picked = await recommender.pick(session, requests, now=SPLIT)
            seconds.append(time.perf_counter() - began)
            for customer, _, after in batch:
                score.judged += 1
                score.hits += any(
                    int(product["product_id"]) in after for product in picked[customer.id]
                )
        return score, seconds
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="default: SQLite in a temporary file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shop = make_shop(rng)
    customers = make_customers(shop, args.customers, rng)
    orders = sum(len(customer.orders) for customer in customers)
    items = sum(len(basket) for customer in customers for _, basket in customer.orders)
    scores, elapsed, picks = evaluate(shop, customers)
    print(
        f"{len(shop.cards)} products in {len(CATEGORIES)} categories, {args.customers} "
        f"customers, {orders} orders ({items} items), split at {SPLIT:%Y-%m-%d}; "
        f"{scores['best'].judged} customers ordered before and within "
        f"{TEST_WINDOW.days} days after"
    )
    print(f"{'strategy':<16} {'hits':>6} {'judged':>7} {'hit rate@3':>11}")
    labels = {"best": "best sellers"}
    for name, score in scores.items():
        print(
            f"{labels.get(name, name):<16} {score.hits:>6} {score.judged:>7} "
            f"{100 * score.rate:>10.1f}%"
        )
    ours, baseline = scores["co_purchase"], scores["best"]
    print(
        f"ranking: {1e6 * elapsed / picks:.0f} µs per recommendation "
        f"({picks} picks from precomputed counts)"
    )
    print(
        f"recommendations: ours {100 * ours.rate:.1f}% hit rate@3 (co_purchase), baseline "
        f"{100 * baseline.rate:.1f}% (best sellers, owned excluded), "
        f"ratio {ours.rate / max(baseline.rate, 1e-9):.2f} (higher is better)"
    )
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        database = url.split("+")[0].split(":")[0]
        through, seconds = asyncio.run(through_database(url, shop, customers))
    warm = sorted(seconds[1:])
    print(
        f"{database}: dispatcher path (Recommender.pick) {100 * through.rate:.1f}% hit rate@3 "
        f"over the same {through.judged} customers; a batch of 100: "
        f"{1000 * seconds[0]:.0f} ms with an empty cache, "
        f"{1000 * warm[len(warm) // 2]:.0f} ms median after ({len(seconds)} batches)"
    )


if __name__ == "__main__":
    main()
