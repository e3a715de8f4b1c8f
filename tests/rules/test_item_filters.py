"""Which items a rule is about: category paths as shops name them, product types, vendors
and tags, from the order item and its catalog product (one facts builder)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.rules.categories import category_path
from app.rules.facts import ItemFacts, ProductFacts, item_facts
from app.rules.model import ItemFilter

DIAPERS = ProductFacts(
    product_type="Windeln",
    vendor="Lillydoo",
    category_paths=(("Baby & Toddler", "Diapering", "Diapers"),),
    tags=("eco", "subscription"),
)
# WooCommerce: the slugs of its categories, one path each without the category list.
DESK = ProductFacts(
    vendor="Möbelwerk Süd",
    category_paths=(("kinderzimmer", "schreibtische"), ("schulanfang",)),
)


def facts(product: ProductFacts | None, **item: object) -> ItemFacts:
    values: dict = {
        "sku": "DIAPER-4-44",
        "category": None,
        "quantity": 1,
        "unit_price": Decimal("13.90"),
        "tags": (),
        "attributes": {},
    }
    values.update(item)
    return item_facts(product=product, **values)


@pytest.mark.parametrize(
    ("written", "compared"),
    [
        ("Baby & Toddler > Diapering > Diapers", "baby-toddler/diapering/diapers"),
        ("Baby/Diapers", "baby/diapers"),
        ("  baby / diapers / ", "baby/diapers"),
        (
            "Food, Beverages & Tobacco > Beverages > Coffee",
            "food-beverages-tobacco/beverages/coffee",
        ),
        ("Kinderzimmer > Schreibtische für Schüler", "kinderzimmer/schreibtische-fur-schuler"),
        ("Größe", "grosse"),
        ("%d0%ba%d0%be%d1%84%d0%b5", "кофе"),  # a WooCommerce slug of "Кофе"
        ("Кофе > Зерно", "кофе/зерно"),
        ("茶 > 煎茶", "茶/煎茶"),
        ("&", ""),
    ],
)
def test_category_paths_are_compared_in_one_form(written: str, compared: str) -> None:
    assert category_path(written) == compared


@pytest.mark.parametrize(
    ("values", "matches"),
    [
        (["Baby & Toddler"], True),
        (["baby-toddler/diapering"], True),
        (["BABY & TODDLER > DIAPERING > DIAPERS"], True),
        (["Baby & Toddler > Diapering > Diapers > Night"], False),  # below it: not this item
        (["baby/diapers"], False),  # another tree: a rule never guesses
        (["diapers"], False),  # not from the root
        (["baby"], False),  # "baby" is not the segment "baby-toddler"
    ],
)
def test_category_prefixes_of_a_shopify_taxonomy_path(values: list[str], matches: bool) -> None:
    assert ItemFilter(category=values).matches(facts(DIAPERS)) is matches


def test_woocommerce_slugs_any_of_its_categories() -> None:
    item = facts(DESK, sku="DESK-LERNFIX-EICHE")
    assert ItemFilter(category=["kinderzimmer"]).matches(item)
    assert ItemFilter(category=["Kinderzimmer > Schreibtische"]).matches(item)
    assert ItemFilter(category=["schulanfang"]).matches(item)
    assert not ItemFilter(category=["schreibtische"]).matches(item)


def test_the_items_own_category_counts_when_the_product_has_none() -> None:
    own = facts(None, category="baby/diapers")
    assert ItemFilter(category=["baby"]).matches(own)
    assert not ItemFilter(category=["babyfood"]).matches(own)
    # A product without the shop's categories: its type counts as one, and the item's own.
    typed = facts(ProductFacts(product_type="Baby/Diapers"), category="gifts")
    assert typed.category_paths == ("gifts", "baby/diapers")
    assert ItemFilter(category=["baby/diapers"]).matches(typed)
    # With the shop's categories, those decide.
    assert not ItemFilter(category=["gifts"]).matches(facts(DIAPERS, category="gifts"))


def test_product_type_vendor_and_tags_come_from_the_product() -> None:
    item = facts(DIAPERS, tags=("gift",))
    assert item.tags == ("gift", "eco", "subscription")
    assert ItemFilter(product_type=["windeln"]).matches(item)
    assert ItemFilter(vendor=["  LILLYDOO "]).matches(item)
    assert ItemFilter(tag=["eco"]).matches(item)
    assert ItemFilter(tag=["gift"]).matches(item)
    assert not ItemFilter(tag=["Eco"]).matches(item)  # tags stay exact, as before
    assert not ItemFilter(vendor=["Pampers"], product_type=["Feuchttücher"]).matches(item)
    # Selectors: any one of them; price and quantity constrain as before.
    assert ItemFilter(sku=["COFFEE-*"], vendor=["lillydoo"]).matches(item)
    assert not ItemFilter(vendor=["lillydoo"], price={"min": 20}).matches(item)
    assert not ItemFilter(vendor=["lillydoo"]).matches(facts(None))


def test_facts_built_by_hand_still_match_their_own_category() -> None:
    # Tests and older callers build ItemFacts directly: their category is compared as well.
    assert ItemFilter(category=["coffee"]).matches(ItemFacts("COFFEE-A", "Coffee/Beans"))


def test_a_category_without_letters_is_refused() -> None:
    with pytest.raises(ValidationError, match="no letter or digit"):
        ItemFilter(category=[" > "])
