"""The ranking itself (app/catalog/recommendations.py): pure, on hand-made histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.catalog.recommendations import (
    ProductCard,
    Purchase,
    Weighting,
    best_seller_scores,
    category_path,
    co_purchase_by_seed,
    combined,
    recommend,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WEIGHTING = Weighting(half_life_days=30, lookback_days=365)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def card(key: str, *categories: str, available: bool = True, seen: int = 100) -> ProductCard:
    return ProductCard(
        key=key,
        title=f"Product {key}",
        sku=key.upper(),
        url=f"https://shop.example/products/{key}",
        price=Decimal("9.90"),
        currency="EUR",
        categories=tuple(category_path(category) for category in categories),
        available=available,
        first_seen_at=days_ago(seen),
    )


CATALOG = {
    card.key: card
    for card in [
        card("ethiopia", "Coffee > Beans"),
        card("kenya", "Coffee > Beans", seen=3),
        card("brazil", "Coffee > Beans", seen=10),
        card("decaf", "Coffee > Ground", seen=1),
        card("grinder", "Kitchen > Coffee"),
        card("filters", "Kitchen > Coffee"),
        card("sold-out", "Coffee > Beans", available=False, seen=0),
        card("diapers", "Baby > Diapers", seen=2),
    ]
}


def test_weight_halves_every_half_life_and_stops_at_the_lookback() -> None:
    assert WEIGHTING.weight(NOW, NOW) == 1.0
    assert WEIGHTING.weight(days_ago(30), NOW) == pytest.approx(0.5)
    assert WEIGHTING.weight(days_ago(60), NOW) == pytest.approx(0.25)
    assert WEIGHTING.weight(days_ago(366), NOW) == 0.0


def test_co_purchase_counts_each_customer_once_and_recent_ones_more() -> None:
    purchases = [
        # Customer 1 bought ethiopia three times and kenya once: one pair, not three.
        Purchase(1, "ethiopia", days_ago(90)),
        Purchase(1, "ethiopia", days_ago(60)),
        Purchase(1, "ethiopia", days_ago(1)),
        Purchase(1, "kenya", days_ago(2)),
        # Customers 2 and 3 bought ethiopia with the grinder, long ago.
        Purchase(2, "ethiopia", days_ago(120)),
        Purchase(2, "grinder", days_ago(120)),
        Purchase(3, "ethiopia", days_ago(150)),
        Purchase(3, "grinder", days_ago(150)),
        # A customer without the seed adds nothing; a purchase after "now" does not count.
        Purchase(4, "kenya", days_ago(1)),
        Purchase(5, "ethiopia", days_ago(1)),
        Purchase(5, "brazil", NOW + timedelta(days=1)),
    ]
    [scores] = co_purchase_by_seed(
        purchases, seeds=["ethiopia"], now=NOW, weighting=WEIGHTING
    ).values()
    # kenya: one customer, at the later of their two latest purchases (1 day ago).
    assert scores["kenya"] == pytest.approx(WEIGHTING.weight(days_ago(1), NOW))
    # grinder: two customers, but 4 and 5 months ago (a 30-day half-life).
    assert scores["grinder"] == pytest.approx(
        WEIGHTING.weight(days_ago(120), NOW) + WEIGHTING.weight(days_ago(150), NOW)
    )
    assert scores["kenya"] > scores["grinder"]
    assert "brazil" not in scores and "ethiopia" not in scores


def test_best_sellers_count_buyers_not_repeats() -> None:
    purchases = [Purchase(1, "kenya", days_ago(day)) for day in range(1, 6)] + [
        Purchase(2, "brazil", days_ago(1)),
        Purchase(3, "brazil", days_ago(1)),
    ]
    scores = best_seller_scores(purchases, now=NOW, weighting=WEIGHTING)
    assert scores["brazil"] > scores["kenya"]


def test_co_purchase_first_then_best_sellers_of_the_category() -> None:
    picked = recommend(
        source="co_purchase",
        count=3,
        seeds=["ethiopia"],
        products=CATALOG,
        co_purchase={"grinder": 2.0, "sold-out": 5.0, "unknown": 9.0},
        best_sellers={"brazil": 3.0, "kenya": 4.0, "diapers": 10.0, "filters": 1.0},
    )
    # Unavailable and unknown products never show; then the same category (Coffee > Beans)
    # before the parent-less Kitchen one; diapers share no category with the seed.
    assert [card.key for card in picked] == ["grinder", "kenya", "brazil"]


def test_owned_products_are_never_recommended_unless_the_rule_allows() -> None:
    arguments = dict(
        source="same_category",
        count=2,
        seeds=["ethiopia"],
        products=CATALOG,
        best_sellers={"kenya": 4.0, "brazil": 3.0, "decaf": 2.0},
        owned={"kenya"},
    )
    assert [c.key for c in recommend(**arguments)] == ["brazil", "decaf"]  # type: ignore[arg-type]
    assert [c.key for c in recommend(**arguments, exclude_owned=False)] == [  # type: ignore[arg-type]
        "kenya",
        "brazil",
    ]


def test_the_seed_itself_is_never_recommended() -> None:
    picked = recommend(
        source="co_purchase",
        count=3,
        seeds=["kenya"],
        products=CATALOG,
        co_purchase={"kenya": 9.0},
        best_sellers={"kenya": 9.0},
        exclude_owned=False,
    )
    assert "kenya" not in [card.key for card in picked]


def test_new_arrivals_of_the_items_categories_else_of_the_shop() -> None:
    newest = ["sold-out", "decaf", "diapers", "kenya", "brazil"]
    of_coffee = recommend(
        source="new_arrivals", count=3, seeds=["ethiopia"], products=CATALOG, newest=newest
    )
    assert [card.key for card in of_coffee] == ["decaf", "kenya", "brazil"]
    # No seed in the catalog and no category on the order: the shop's newest.
    shop_wide = recommend(
        source="new_arrivals", count=2, seeds=["unknown"], products=CATALOG, newest=newest
    )
    assert [card.key for card in shop_wide] == ["decaf", "diapers"]


def test_an_order_category_stands_in_for_a_seed_the_catalog_lacks() -> None:
    picked = recommend(
        source="same_category",
        count=3,
        seeds=["not-in-catalog"],
        products=CATALOG,
        best_sellers={"diapers": 10.0, "kenya": 2.0, "grinder": 1.0},
        seed_categories=[category_path("coffee/beans")],
    )
    assert [card.key for card in picked] == ["kenya"]


def test_several_seeds_add_up() -> None:
    by_seed = {"a": {"x": 1.0, "y": 2.0}, "b": {"x": 2.5}}
    assert combined(by_seed, ["a", "b"]) == {"x": 3.5, "y": 2.0}


def test_template_context_of_a_card() -> None:
    assert CATALOG["kenya"].context() == {
        "title": "Product kenya",
        "url": "https://shop.example/products/kenya",
        "image_url": None,
        "price": Decimal("9.90"),
        "currency": "EUR",
        "sku": "KENYA",
        "product_id": None,
    }
