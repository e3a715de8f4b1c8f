"""Which products to recommend to a customer: pure ranking over purchases and the catalog.

No I/O. The dispatcher and the preview feed it from the database (app/catalog/recommender.py
and repository.py), `aftersale simulate` from its in-memory history, the benchmark from a
generated one: the same functions decide in each.

- **co_purchase**: products bought by the customers who bought the seeds ("customers who
  bought this also bought"), each such customer counted once per pair, weighted by how
  recent the later of the two purchases is (exponential decay with a half-life). Topped up
  with the best sellers of the seeds' categories.
- **same_category**: the best sellers of the seeds' categories (the deepest shared category
  path first).
- **new_arrivals**: the newest products of the seeds' categories, else of the shop.

Only available products (active, in stock, not deleted) are recommended, never a seed, and
never one the customer owns when `exclude_owned`. Seeds without a category fall back to the
shop's best sellers (or newest products).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

Source = Literal["co_purchase", "same_category", "new_arrivals"]
SOURCES: tuple[Source, ...] = ("co_purchase", "same_category", "new_arrivals")
# A product's key: the catalog row id in the database, the product's id in a simulation.
Key = Hashable

# How many co-purchased products each seed keeps (more than any mail shows: the owned and
# unavailable ones are dropped afterwards).
NEIGHBOURS_KEPT = 50


@dataclass(frozen=True, slots=True)
class Purchase:
    """One product a customer bought in a standing (not cancelled or refunded) order."""

    customer: Hashable
    product: Key
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class Weighting:
    """How purchases count: only within `lookback_days`, halving every `half_life_days`."""

    half_life_days: float = 90.0
    lookback_days: int = 365

    def since(self, now: datetime) -> datetime:
        return now - timedelta(days=self.lookback_days)

    def weight(self, placed_at: datetime, now: datetime) -> float:
        """1 for a purchase now, 0.5 one half-life ago, 0 outside the lookback window."""
        age_days = max((now - placed_at).total_seconds() / 86400, 0.0)
        if age_days > self.lookback_days:
            return 0.0
        return math.exp(-math.log(2) * age_days / self.half_life_days)


@dataclass(frozen=True, slots=True)
class ProductCard:
    """A catalog product as ranking and templates see it."""

    key: Key
    title: str
    product_id: str | None = None  # the platform's (or our JSON's) product id
    sku: str | None = None  # of the variant a link leads to
    url: str | None = None
    image_url: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    # Category paths, each from the root, compared case-insensitively.
    categories: tuple[tuple[str, ...], ...] = ()
    available: bool = True  # active, in stock and not deleted
    first_seen_at: datetime | None = None

    def context(self) -> dict[str, Any]:
        """What a template gets as one of `recommendations`."""
        return {
            "title": self.title,
            "url": self.url,
            "image_url": self.image_url,
            "price": self.price,
            "currency": self.currency,
            "sku": self.sku,
            "product_id": self.product_id,
        }


def category_path(text: str) -> tuple[str, ...]:
    """An order item's category ("coffee/beans", "Coffee > Beans") as a path."""
    separator = ">" if ">" in text else "/"
    return tuple(part.strip().lower() for part in text.split(separator) if part.strip())


def normalized(paths: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        path
        for path in (tuple(part.strip().lower() for part in p if part.strip()) for p in paths)
        if path
    )


def co_purchase_by_seed(
    purchases: Iterable[Purchase], *, seeds: Collection[Key], now: datetime, weighting: Weighting
) -> dict[Key, dict[Key, float]]:
    """For each seed, the other products its buyers bought and their weighted counts.

    Each customer counts once per (seed, product) pair, weighted by the later of their
    latest purchase of either; purchases after `now` or outside the lookback are ignored.
    Each seed keeps its NEIGHBOURS_KEPT best.
    """
    wanted = set(seeds)
    latest: dict[Hashable, dict[Key, datetime]] = {}
    since = weighting.since(now)
    for purchase in purchases:
        if not since <= purchase.placed_at <= now:
            continue
        bought = latest.setdefault(purchase.customer, {})
        known = bought.get(purchase.product)
        if known is None or purchase.placed_at > known:
            bought[purchase.product] = purchase.placed_at
    scores: dict[Key, dict[Key, float]] = {seed: {} for seed in wanted}
    for bought in latest.values():
        own_seeds = [seed for seed in bought if seed in wanted]
        if not own_seeds:
            continue
        for seed in own_seeds:
            row = scores[seed]
            seed_at = bought[seed]
            for product, at in bought.items():
                if product == seed:
                    continue
                row[product] = row.get(product, 0.0) + weighting.weight(max(seed_at, at), now)
    return {seed: top(row, NEIGHBOURS_KEPT) for seed, row in scores.items()}


def best_seller_scores(
    purchases: Iterable[Purchase], *, now: datetime, weighting: Weighting
) -> dict[Key, float]:
    """Each product's buyers, each counted once, weighted by their latest purchase of it."""
    latest: dict[tuple[Hashable, Key], datetime] = {}
    since = weighting.since(now)
    for purchase in purchases:
        if not since <= purchase.placed_at <= now:
            continue
        pair = (purchase.customer, purchase.product)
        known = latest.get(pair)
        if known is None or purchase.placed_at > known:
            latest[pair] = purchase.placed_at
    scores: dict[Key, float] = {}
    for (_, product), at in latest.items():
        scores[product] = scores.get(product, 0.0) + weighting.weight(at, now)
    return scores


def top(scores: Mapping[Key, float], count: int) -> dict[Key, float]:
    best = heapq.nlargest(count, scores.items(), key=lambda pair: (pair[1], str(pair[0])))
    return dict(best)


def combined(by_seed: Mapping[Key, Mapping[Key, float]], seeds: Iterable[Key]) -> dict[Key, float]:
    """The co-purchase scores of several seeds, summed."""
    total: dict[Key, float] = {}
    for seed in seeds:
        for product, score in by_seed.get(seed, {}).items():
            total[product] = total.get(product, 0.0) + score
    return total


def recommend(
    *,
    source: Source,
    count: int,
    seeds: Sequence[Key],
    products: Mapping[Key, ProductCard],
    co_purchase: Mapping[Key, float] | None = None,
    best_sellers: Mapping[Key, float] | None = None,
    newest: Sequence[Key] = (),
    owned: Collection[Key] = (),
    exclude_owned: bool = True,
    seed_categories: Iterable[Sequence[str]] = (),
) -> list[ProductCard]:
    """Up to `count` products, best first.

    `products` holds every candidate and the seeds (for their categories); a key missing
    from it is never recommended. `co_purchase` and `best_sellers` map keys to scores;
    `newest` lists keys newest first. `seed_categories` adds category paths of seeds the
    catalog does not know (an order item's own category).
    """
    if count <= 0:
        return []
    barred = set(seeds) | (set(owned) if exclude_owned else set())

    def usable(key: Key) -> ProductCard | None:
        card = products.get(key)
        return card if card is not None and card.available and key not in barred else None

    categories = set(normalized(seed_categories))
    for seed in seeds:
        card = products.get(seed)
        if card is not None:
            categories.update(card.categories)
    sellers = best_sellers or {}
    ranked: list[Key] = []
    if source == "co_purchase":
        scores = co_purchase or {}
        ranked = sorted(
            (key for key in scores if usable(key) is not None),
            key=lambda key: (-scores[key], -sellers.get(key, 0.0), str(key)),
        )
    if source in ("co_purchase", "same_category"):
        ranked += _category_best_sellers(sellers, categories, products)
    else:
        ranked += _newest(newest, categories, products)
    chosen: list[ProductCard] = []
    seen: set[Key] = set()
    for key in ranked:
        card = usable(key)
        if card is None or key in seen:
            continue
        seen.add(key)
        chosen.append(card)
        if len(chosen) == count:
            break
    return chosen


def _depth(card: ProductCard, categories: Collection[tuple[str, ...]]) -> int:
    """How many leading levels the product's categories share with the seeds' (0: none)."""
    best = 0
    for path in card.categories:
        for wanted in categories:
            shared = 0
            for mine, theirs in zip(path, wanted, strict=False):
                if mine != theirs:
                    break
                shared += 1
            best = max(best, shared)
    return best


def _category_best_sellers(
    sellers: Mapping[Key, float],
    categories: Collection[tuple[str, ...]],
    products: Mapping[Key, ProductCard],
) -> list[Key]:
    """Best sellers of the seeds' categories, the closest category first; of the whole shop
    when no seed has a category."""
    if not categories:
        return sorted(sellers, key=lambda key: (-sellers[key], str(key)))
    depths = {key: _depth(card, categories) for key in sellers if (card := products.get(key))}
    return sorted(
        (key for key, depth in depths.items() if depth > 0),
        key=lambda key: (-depths[key], -sellers[key], str(key)),
    )


def _newest(
    newest: Sequence[Key],
    categories: Collection[tuple[str, ...]],
    products: Mapping[Key, ProductCard],
) -> list[Key]:
    if not categories:
        return list(newest)
    return [key for key in newest if (card := products.get(key)) and _depth(card, categories) > 0]
