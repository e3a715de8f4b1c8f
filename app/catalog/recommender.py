"""Recommendations for a batch of messages, from the database, with a short-lived cache.

The ranking is app/catalog/recommendations.py; this reads what it needs. A batch costs at
most one statement for its seeds' products, one for the owners' purchases, and, for what
the cache does not hold yet, one per kind of input (co-purchases of new seeds, the shop's
best sellers, its newest products, product cards). What was read stays for
`RECOMMEND_CACHE_SECONDS`, per process: stock and prices may be that much behind.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository
from app.catalog.recommendations import (
    ProductCard,
    Weighting,
    best_seller_scores,
    category_path,
    co_purchase_by_seed,
    combined,
    recommend,
    top,
)
from app.catalog.service import find_products_for_items
from app.rules.model import Recommend

# The latest buyers of a seed whose purchases are counted: enough for stable neighbours,
# and a bound on the rows one seed can cost.
BUYERS_PER_SEED = 2000
# ...and of one read, whatever the number of seeds a cold batch brings.
BUYERS_PER_READ = 20_000
# Best sellers are counted over the shop's latest purchases (order items) in the lookback.
BEST_SELLER_SAMPLE = 20_000
BEST_SELLERS_KEPT = 500
NEWEST_KEPT = 200
# Entries per cache; a cache that grows past it starts again (simple, and rare).
CACHE_ENTRIES = 50_000

T = TypeVar("T")


class _Cache(Generic[T]):
    def __init__(self, ttl: timedelta) -> None:
        self._ttl = ttl
        self._entries: dict[Hashable, tuple[datetime, T]] = {}

    def get(self, key: Hashable, now: datetime) -> T | None:
        found = self._entries.get(key)
        if found is None or found[0] <= now:
            return None
        return found[1]

    def put(self, key: Hashable, value: T, now: datetime) -> None:
        if len(self._entries) >= CACHE_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, value)


@dataclass(frozen=True)
class RecommendRequest:
    """One message's wish: `items` are what the rule is about, as
    `(product_id, variant_id, sku)` (see `item_refs`); `categories` their order categories."""

    key: Hashable
    shop: str
    customer_id: int | None
    spec: Recommend
    items: Sequence[tuple[str | None, str | None, str | None]]
    categories: Sequence[str] = ()


def item_refs(items: Iterable[Any]) -> list[tuple[str | None, str | None, str | None]]:
    """What an order item says of its product: the platform's product and variant ids, and
    its SKU (app/catalog/repository.py find_products_for_items takes them in that order)."""
    return [
        (
            getattr(item, "product_ref", None),
            getattr(item, "variant_ref", None),
            item.sku,
        )
        for item in items
    ]


class RecommendSettings(Protocol):
    """The settings recommendations are tuned by (app.config.Settings has them)."""

    @property
    def recommend_half_life_days(self) -> float: ...
    @property
    def recommend_lookback_days(self) -> int: ...
    @property
    def recommend_cache_seconds(self) -> float: ...


class Recommender:
    def __init__(self, *, weighting: Weighting, cache_seconds: float) -> None:
        self.weighting = weighting
        ttl = timedelta(seconds=cache_seconds)
        self._seeds: _Cache[int] = _Cache(ttl)
        self._neighbours: _Cache[dict[Hashable, float]] = _Cache(ttl)
        self._best: _Cache[dict[Hashable, float]] = _Cache(ttl)
        self._newest: _Cache[list[int]] = _Cache(ttl)
        self._cards: _Cache[ProductCard] = _Cache(ttl)

    @classmethod
    def from_settings(cls, settings: RecommendSettings) -> Recommender:
        return cls(
            weighting=Weighting(
                half_life_days=settings.recommend_half_life_days,
                lookback_days=settings.recommend_lookback_days,
            ),
            cache_seconds=settings.recommend_cache_seconds,
        )

    async def pick(
        self, session: AsyncSession, requests: Sequence[RecommendRequest], *, now: datetime
    ) -> dict[Hashable, list[dict[str, Any]]]:
        """Each request's recommendations, as template context (`ProductCard.context`)."""
        found: dict[Hashable, list[dict[str, Any]]] = {}
        by_shop: dict[str, list[RecommendRequest]] = {}
        for request in requests:
            by_shop.setdefault(request.shop, []).append(request)
        for shop, wanted in by_shop.items():
            for request, cards in await self._pick_for_shop(session, shop, wanted, now=now):
                found[request.key] = [card.context() for card in cards]
        return found

    async def _pick_for_shop(
        self,
        session: AsyncSession,
        shop: str,
        requests: Sequence[RecommendRequest],
        *,
        now: datetime,
    ) -> list[tuple[RecommendRequest, list[ProductCard]]]:
        seeds = await self._seed_keys(session, shop, requests, now=now)
        sources = {request.spec.from_ for request in requests}
        neighbours: dict[Hashable, dict[Hashable, float]] = {}
        if "co_purchase" in sources:
            wanted = {
                key
                for request in requests
                if request.spec.from_ == "co_purchase"
                for key in seeds[request.key]
            }
            neighbours = await self._neighbours_of(session, shop, wanted, now=now)
        best: dict[Hashable, float] = {}
        if sources & {"co_purchase", "same_category"}:
            best = await self._best_sellers(session, shop, now=now)
        newest: list[int] = []
        if "new_arrivals" in sources:
            newest = await self._newest_of(session, shop, now=now)
        owners = {
            request.customer_id
            for request in requests
            if request.spec.exclude == "owned" and request.customer_id is not None
        }
        owned = await repository.owned_products(session, shop=shop, customer_ids=owners)
        keys: set[Hashable] = set(best) | set(newest)
        for request in requests:
            keys.update(seeds[request.key])
        for row in neighbours.values():
            keys.update(row)
        cards = await self._cards_of(session, shop, keys, now=now)
        picked = []
        for request in requests:
            mine = seeds[request.key]
            picked.append(
                (
                    request,
                    recommend(
                        source=request.spec.from_,
                        count=request.spec.count,
                        seeds=mine,
                        products=cards,
                        co_purchase=combined(neighbours, mine),
                        best_sellers=best,
                        newest=newest,
                        owned=owned.get(request.customer_id, set())
                        if request.customer_id is not None
                        else (),
                        exclude_owned=request.spec.exclude == "owned",
                        seed_categories=[
                            category_path(category) for category in request.categories if category
                        ],
                    ),
                )
            )
        return picked

    async def _seed_keys(
        self,
        session: AsyncSession,
        shop: str,
        requests: Sequence[RecommendRequest],
        *,
        now: datetime,
    ) -> dict[Hashable, list[int]]:
        known: dict[tuple[str | None, str | None, str | None], int] = {}
        unknown = set()
        for request in requests:
            for ref in request.items:
                cached = self._seeds.get((shop, ref), now)
                if cached is None:
                    unknown.add(ref)
                else:
                    known[ref] = cached
        if unknown:
            refs = sorted(unknown, key=str)
            matches = await find_products_for_items(session, shop=shop, items=refs)
            for ref, match in zip(refs, matches, strict=True):
                # -1: looked up and not in the catalog.
                known[ref] = match.product.id if match else -1
                self._seeds.put((shop, ref), known[ref], now)
        found: dict[Hashable, list[int]] = {}
        for request in requests:
            keys = (known[ref] for ref in request.items)
            found[request.key] = list(dict.fromkeys(key for key in keys if key >= 0))
        return found

    async def _neighbours_of(
        self, session: AsyncSession, shop: str, seeds: set[int], *, now: datetime
    ) -> dict[Hashable, dict[Hashable, float]]:
        found: dict[Hashable, dict[Hashable, float]] = {}
        missing = []
        for seed in seeds:
            row = self._neighbours.get((shop, seed), now)
            if row is None:
                missing.append(seed)
            else:
                found[seed] = row
        if missing:
            skus = await repository.skus_of_products(session, missing)
            purchases = await repository.purchases_of_buyers(
                session,
                shop=shop,
                product_keys=missing,
                skus={sku for seed in missing for sku in skus.get(seed, ())},
                since=self.weighting.since(now),
                until=now,
                buyers=min(BUYERS_PER_SEED * len(missing), BUYERS_PER_READ),
            )
            counted = co_purchase_by_seed(
                purchases, seeds=missing, now=now, weighting=self.weighting
            )
            for seed in missing:
                found[seed] = counted.get(seed, {})
                self._neighbours.put((shop, seed), found[seed], now)
        return found

    async def _best_sellers(
        self, session: AsyncSession, shop: str, *, now: datetime
    ) -> dict[Hashable, float]:
        best = self._best.get(shop, now)
        if best is None:
            purchases = await repository.recent_purchases(
                session,
                shop=shop,
                since=self.weighting.since(now),
                until=now,
                limit=BEST_SELLER_SAMPLE,
            )
            scores = best_seller_scores(purchases, now=now, weighting=self.weighting)
            best = top(scores, BEST_SELLERS_KEPT)
            self._best.put(shop, best, now)
        return best

    async def _newest_of(self, session: AsyncSession, shop: str, *, now: datetime) -> list[int]:
        newest = self._newest.get(shop, now)
        if newest is None:
            newest = await repository.newest_products(session, shop=shop, limit=NEWEST_KEPT)
            self._newest.put(shop, newest, now)
        return newest

    async def _cards_of(
        self, session: AsyncSession, shop: str, keys: Iterable[Hashable], *, now: datetime
    ) -> Mapping[Hashable, ProductCard]:
        cards: dict[Hashable, ProductCard] = {}
        missing: list[int] = []
        for key in keys:
            card = self._cards.get(key, now)
            if card is not None:
                cards[key] = card
            elif isinstance(key, int):
                missing.append(key)
        if missing:
            for key, card in (await repository.product_cards(session, missing)).items():
                cards[key] = card
                self._cards.put(key, card, now)
        return cards
