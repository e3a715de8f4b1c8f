"""`{{ review.items }}` in mail templates: each product to rate, with its star links (pure).

Each item is a mapping: `name`, `sku`, `category`, `url`, `image_url`, `product` (the
catalog's, when known), `stars` ([{stars, url}], 1-5), `review_url` (the item's page),
`links`: see `review_item`. `item.links` prints itself like `survey.links`
(app/survey/links.py, whose button row it reuses): five buttons in HTML, "stars: URL"
lines in text, in the language of the template being rendered. Previews get sample
links that record nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from app.mail.templates import rendering_language
from app.reviews.tokens import SAMPLE_TOKEN, make_review_token
from app.survey.links import survey_html, survey_text

STARS = (1, 2, 3, 4, 5)
# What a customer may write: markup that must print as text.
SAMPLE_COMMENT = "The <b>box</b> came damaged & one part was missing."
SAMPLE_ANSWERED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "question": "How would you rate {name}?",
        "low": "Poor",
        "high": "Excellent",
        "scale": "1 = poor, 5 = excellent",
    },
    "ru": {
        "question": "Как вы оцените {name}?",
        "low": "Плохо",
        "high": "Отлично",
        "scale": "1 — плохо, 5 — отлично",
    },
}


class ReviewedItem(Protocol):
    """An `OrderItem` row, or a preview's item."""

    @property
    def name(self) -> str: ...
    @property
    def sku(self) -> str | None: ...
    @property
    def category(self) -> str | None: ...


_Item = TypeVar("_Item", bound=ReviewedItem)


def review_texts(language: str | None, name: str) -> dict[str, str]:
    texts = TEXTS.get(language or "en", TEXTS["en"])
    return {**texts, "question": texts["question"].format(name=name)}


@dataclass(frozen=True)
class StarLinks:
    """One item's five star links; prints a row of buttons (HTML) or lines (text)."""

    name: str
    urls: tuple[str, ...]

    def __html__(self) -> str:
        return survey_html(self.urls, review_texts(rendering_language(), self.name), STARS)

    def __str__(self) -> str:
        return survey_text(self.urls, review_texts(rendering_language(), self.name), STARS)


def review_item(
    item: ReviewedItem, *, position: int, token: str, public_url: str, links: Mapping[str, Any]
) -> dict[str, Any]:
    """One item of `review.items`: the product and its links (`links`: what
    `ShopLinks.item` knows of it), with `token`'s star links and its review page."""
    base = f"{public_url.rstrip('/')}/r/{token}"
    urls = tuple(f"{base}/{stars}" for stars in STARS)
    product = links.get("product")
    return {
        "position": position,
        "name": item.name,
        "title": (product or {}).get("title") or item.name,
        "sku": item.sku,
        "category": item.category,
        "url": links.get("url"),
        "image_url": links.get("image_url"),
        "product": product,
        "stars": [{"stars": stars, "url": url} for stars, url in zip(STARS, urls, strict=True)],
        # The page with the five stars (and, once rated, the comment box).
        "review_url": base,
        "links": StarLinks(item.name, urls),
    }


def distinct_items(
    items: Sequence[tuple[int, _Item]], *, position: int | None
) -> list[tuple[int, _Item]]:
    """The (position, item) pairs to ask about: the one at `position` (a per-item request),
    else one per distinct product (sku; a line without one is its own), in order."""
    if position is not None:
        return [(at, item) for at, item in items if at == position]
    seen: set[str] = set()
    kept = []
    for at, item in items:
        key = item.sku or f"#{at}"
        if key not in seen:
            seen.add(key)
            kept.append((at, item))
    return kept


def message_review_context(
    items: Sequence[tuple[int, ReviewedItem, Mapping[str, Any]]],
    *,
    message_id: int,
    public_url: str,
    secrets: Sequence[str],
    now: datetime,
    per: str,
) -> dict[str, Any]:
    """The template's `review` of one message: `items` (position, item, its links) each
    with links signed for this message and item, and `per`."""
    return {
        "per": per,
        "items": [
            review_item(
                item,
                position=position,
                token=make_review_token(
                    message_id=message_id, position=position, issued_at=now, secrets=secrets
                ),
                public_url=public_url,
                links=links,
            )
            for position, item, links in items
        ],
    }


@dataclass(frozen=True)
class _SampleItem:
    name: str
    sku: str | None
    category: str | None


def sample_review_context(
    public_url: str, items: Sequence[Mapping[str, Any]], per: str = "order"
) -> dict[str, Any]:
    """`review` for previews and test sends, from the context's `items` (name, sku,
    category and their links): links that show the pages and record nothing."""
    chosen = items[:1] if per == "item" else items
    return {
        "per": per,
        "items": [
            review_item(
                _SampleItem(item["name"], item.get("sku"), item.get("category")),
                position=at,
                token=SAMPLE_TOKEN,
                public_url=public_url,
                links=item,
            )
            for at, item in enumerate(chosen)
        ],
    }


def answered_review_context(
    *,
    stars: int,
    comment: str | None,
    answered_at: datetime | None,
    name: str,
    sku: str | None,
    category: str | None,
    links: Mapping[str, Any],
) -> dict[str, Any]:
    """The template's `review` of a review.answered rule's message: the review it follows up.

    `name` is the product as ordered, `title` the catalog's title when known, `variant` the
    catalog variant's title (None when unknown or the only one), `product` the catalog's
    product as in `review.items`; `stars` 1-5 and the customer's `comment` (None without
    one; templates are autoescaped, so it prints as the text it is).
    """
    product = links.get("product")
    return {
        "stars": stars,
        "comment": comment,
        "answered_at": answered_at,
        "name": name,
        "title": (product or {}).get("title") or name,
        "variant": (product or {}).get("variant_title") or None,
        "sku": sku,
        "category": category,
        "url": links.get("url"),
        "image_url": links.get("image_url"),
        "product": product,
    }


def sample_answered_review_context(
    items: Sequence[Mapping[str, Any]], *, comment: str | None = SAMPLE_COMMENT
) -> dict[str, Any]:
    """`review` of a review.answered rule in previews, test sends and `rules check`: a
    2-star review of the first item, with a comment that needs escaping."""
    item: Mapping[str, Any] = items[0] if items else {"name": "Sample product"}
    return answered_review_context(
        stars=2,
        comment=comment,
        answered_at=SAMPLE_ANSWERED_AT,
        name=str(item["name"]),
        sku=item.get("sku"),
        category=item.get("category"),
        links=item,
    )
