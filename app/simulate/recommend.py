"""What a rule's `recommend` picks in a replay: the dispatcher's ranking
(app/catalog/recommendations.py), fed from the replay's orders and a catalog file instead of
the database, read the way app/catalog/recommender.py reads it (the latest buyers of each
seed, the shop's latest purchases, kept for RECOMMEND_CACHE_SECONDS of simulated time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.catalog.recommendations import (
    ProductCard,
    Purchase,
    Weighting,
    best_seller_scores,
    category_path,
    co_purchase_by_seed,
    combined,
    normalized,
    recommend,
    top,
)
from app.catalog.recommender import BEST_SELLER_SAMPLE, BEST_SELLERS_KEPT, BUYERS_PER_SEED
from app.catalog.schemas import ProductIn
from app.lifecycle.memory import Customer, Order
from app.rules.facts import ItemFacts
from app.rules.model import Rule

_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Catalog:
    """The products of a `--catalog` file (our product JSON, one per line)."""

    cards: dict[Hashable, ProductCard]
    by_sku: dict[str, Hashable]
    newest: list[Hashable]  # available products, newest first

    @classmethod
    def of(cls, products: Iterable[ProductIn]) -> Catalog:
        cards: dict[Hashable, ProductCard] = {}
        by_sku: dict[str, Hashable] = {}
        for product in products:
            key = product.id or product.handle
            assert key is not None  # a product needs one or the other
            variants = product.all_variants()
            shown = next((v for v in variants if v.in_stock), variants[0] if variants else None)
            card = ProductCard(
                key=key,
                title=product.title,
                product_id=product.id,
                sku=shown.sku if shown else None,
                url=product.url or (shown.url if shown else None),
                image_url=product.image_url or (shown.image_url if shown else None),
                price=shown.price if shown and shown.price is not None else product.price,
                currency=product.currency,
                categories=normalized(product.categories),
                available=product.active and product.any_in_stock(),
                first_seen_at=product.created_at,
            )
            cards[key] = card
            for variant in variants:
                # As the catalog's lookup: a live, active product wins a shared SKU.
                if variant.sku and (variant.sku not in by_sku or card.available):
                    by_sku[variant.sku] = key
        newest = sorted(
            (key for key, card in cards.items() if card.available),
            key=lambda key: cards[key].first_seen_at or _OLDEST,
            reverse=True,
        )
        return cls(cards=cards, by_sku=by_sku, newest=newest)


@dataclass
class Recommendations:
    """Purchases as the replay applies orders, and the picks of messages that go out."""

    catalog: Catalog
    weighting: Weighting
    cache: timedelta
    # The orders that had each product, in the order they were placed.
    buyers: dict[Hashable, list[Order]] = field(default_factory=dict)
    # The latest order items (an order once per item), as best sellers are counted from.
    latest: deque[Order] = field(default_factory=lambda: deque(maxlen=BEST_SELLER_SAMPLE))
    _best: tuple[datetime, dict[Hashable, float]] | None = None
    _neighbours: dict[Hashable, tuple[datetime, dict[Hashable, float]]] = field(
        default_factory=dict
    )

    def record(self, order: Order) -> None:
        """An order placed (call once, when its items are known)."""
        for key in dict.fromkeys(self._keys(order.items)):
            self.buyers.setdefault(key, []).append(order)
        self.latest.extend([order] * len(order.items))

    def pick(self, rule: Rule, customer: Customer, order: Order | None, now: datetime) -> list[str]:
        """The SKUs (else product ids) `rule` recommends to `customer` now."""
        spec = rule.recommend
        assert spec is not None
        items: Sequence[ItemFacts] = order.items if order is not None else ()
        item_filter = rule.when.items
        seeds_items = [i for i in items if item_filter is None or item_filter.matches(i)]
        seeds_items = seeds_items or list(items)
        seeds = list(dict.fromkeys(self._keys(seeds_items)))
        owned: set[Hashable] = set()
        if spec.exclude == "owned":
            for bought in customer.orders:
                owned.update(self._keys(bought.items))
        cards = recommend(
            source=spec.from_,
            count=spec.count,
            seeds=seeds,
            products=self.catalog.cards,
            co_purchase=combined(self._co_purchase(seeds, now), seeds)
            if spec.from_ == "co_purchase"
            else None,
            best_sellers=self._best_sellers(now),
            newest=self.catalog.newest,
            owned=owned,
            exclude_owned=spec.exclude == "owned",
            seed_categories=[category_path(i.category) for i in seeds_items if i.category],
        )
        return [card.sku or str(card.key) for card in cards]

    def _keys(self, items: Iterable[ItemFacts]) -> Iterable[Hashable]:
        by_sku = self.catalog.by_sku
        return (by_sku[item.sku] for item in items if item.sku and item.sku in by_sku)

    def _purchases(self, orders: Iterable[Order], now: datetime) -> list[Purchase]:
        since = self.weighting.since(now)
        return [
            Purchase(order.customer.id, key, order.placed_at)
            for order in orders
            if order.stands
            and order.customer is not None
            and order.placed_at is not None
            and since <= order.placed_at <= now
            for key in self._keys(order.items)
        ]

    def _co_purchase(
        self, seeds: Sequence[Hashable], now: datetime
    ) -> dict[Hashable, dict[Hashable, float]]:
        found: dict[Hashable, dict[Hashable, float]] = {}
        for seed in seeds:
            cached = self._neighbours.get(seed)
            if cached is not None and cached[0] > now:
                found[seed] = cached[1]
                continue
            since = self.weighting.since(now)
            customers: dict[int, Customer] = {}
            # The seed's latest buyers (in the lookback, before now), as the SQL takes them.
            for order in reversed(self.buyers.get(seed, [])):
                if len(customers) >= BUYERS_PER_SEED:
                    break
                placed = order.placed_at
                if (
                    order.stands
                    and order.customer is not None
                    and placed is not None
                    and since <= placed <= now
                ):
                    customers.setdefault(order.customer.id, order.customer)
            orders = [order for customer in customers.values() for order in customer.orders]
            counted = co_purchase_by_seed(
                self._purchases(orders, now), seeds=[seed], now=now, weighting=self.weighting
            )
            found[seed] = counted.get(seed, {})
            self._neighbours[seed] = (now + self.cache, found[seed])
        return found

    def _best_sellers(self, now: datetime) -> dict[Hashable, float]:
        if self._best is None or self._best[0] <= now:
            scores = best_seller_scores(
                self._purchases(dict.fromkeys(self.latest), now),
                now=now,
                weighting=self.weighting,
            )
            self._best = (now + self.cache, top(scores, BEST_SELLERS_KEPT))
        return self._best[1]
