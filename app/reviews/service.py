"""Product reviews: record a click on a star link, attach a comment, add reviews up.

Like survey answers (app/survey/service.py), whose comment checks and scanner
classification this reuses; unlike them, one row per (message, item): a later click
replaces the stars. A person's review plans the `review.answered` rules through the
lifecycle core (app/lifecycle/flows.py). Services flush and never commit.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.lifecycle.flows import ReviewAnswered
from app.models import ProductReview
from app.ops.metrics import count_tracking_event
from app.reviews import repository
from app.reviews.repository import ReviewFilter, ReviewsBy, ReviewTarget
from app.reviews.schemas import ReviewOut, ReviewPage, ReviewStats, ReviewStatsRow
from app.reviews.tokens import read_review_token
from app.survey.service import day_start
from app.tracking.classify import EventClass, EventFacts, EventKind, Reason, classify
from app.tracking.service import (
    MAX_USER_AGENT,
    Visit,
    anonymised_network,
    classify_thresholds,
    parse_ip,
)


async def find_target(
    session: AsyncSession, *, token: str, settings: Settings, now: datetime, lock: bool = False
) -> ReviewTarget | None:
    """The message item a token rates; None if it names none."""
    claims = read_review_token(
        token,
        secrets=settings.survey_secrets,
        now=now,
        max_age=timedelta(days=settings.survey_link_days),
    )
    if claims is None:
        return None
    return await repository.review_target(
        session, message_id=claims.message_id, position=claims.position, lock=lock
    )


async def record_review(
    session: AsyncSession,
    *,
    token: str,
    stars: int,
    visit: Visit,
    settings: Settings,
    now: datetime,
) -> tuple[ReviewTarget, ReviewAnswered | None] | None:
    """Store (or change) one item's stars with its class and reason; None for a bad token.
    With the target, the review as it now stands (None when nothing was stored): the
    caller runs the lifecycle's `review_answered` (a person's) or `review_discarded`.

    Other stars for the same item within the burst window are a scanner clicking every
    link: the review becomes a machine's.
    """
    target = await find_target(session, token=token, settings=settings, now=now, lock=True)
    if target is None or not 1 <= stars <= 5:
        return None
    if target.customer_erased:
        return target, None  # thanked, but nothing about an erased customer is stored again
    facts = EventFacts(
        kind=EventKind.ANSWER,
        method=visit.method.upper(),
        user_agent=visit.user_agent[:MAX_USER_AGENT],
        ip=parse_ip(visit.ip),
        seconds_since_sent=max(0.0, (now - (target.sent_at or now)).total_seconds()),
    )
    thresholds = classify_thresholds(settings)
    event_class, reason = classify(facts, thresholds)
    burst = timedelta(seconds=thresholds.burst_seconds)
    values = {
        "stars": stars,
        "class_": event_class.value,
        "reason": reason.value,
        "answered_at": now,
        "user_agent": facts.user_agent.strip() or None,
        "ip": anonymised_network(facts.ip),
    }
    review = await repository.review_of(
        session, message_id=target.message_id, position=target.item.position
    )
    if review is None:
        review = await repository.add_review(session, repository.new_review(target, **values))
    elif review.stars != stars and now - review.answered_at < burst:
        review.class_, review.reason = EventClass.MACHINE.value, Reason.SURVEY_BURST.value
        review.answered_at = now
    else:
        for name, value in values.items():
            setattr(review, name, value)
    await session.flush()
    count_tracking_event("review", review.class_)
    return target, ReviewAnswered(
        review_id=review.id,
        customer_id=review.customer_id,
        order_id=review.order_id,
        stars=review.stars,
        answered_at=now,
        human=review.class_ == EventClass.HUMAN.value,
    )


class CommentOutcome(enum.Enum):
    STORED = "stored"
    NO_REVIEW = "no_review"
    DISCARDED = "discarded"  # the customer was erased: thanked, nothing stored


async def add_comment(
    session: AsyncSession, *, token: str, comment: str, settings: Settings, now: datetime
) -> tuple[ReviewTarget, CommentOutcome] | None:
    """Put `comment` on the item's review (a later one replaces it); None for a bad token.
    The caller has checked it (`app.survey.service.comment_problem`)."""
    target = await find_target(session, token=token, settings=settings, now=now, lock=True)
    if target is None:
        return None
    if target.customer_erased:
        return target, CommentOutcome.DISCARDED
    review = await repository.review_of(
        session, message_id=target.message_id, position=target.item.position
    )
    if review is None:
        return target, CommentOutcome.NO_REVIEW
    review.comment, review.commented_at = comment, now
    await session.flush()
    return target, CommentOutcome.STORED


def review_out(review: ProductReview) -> ReviewOut:
    return ReviewOut.model_validate(
        {
            "id": review.id,
            "message_id": review.message_id,
            "product_id": review.product_ref,
            "variant_id": review.variant_ref,
            "sku": review.sku,
            "name": review.name,
            "category": review.category,
            "stars": review.stars,
            "class": review.class_,
            "reason": review.reason,
            "answered_at": review.answered_at,
            "comment": review.comment,
            "commented_at": review.commented_at,
        }
    )


async def reviews_page(
    session: AsyncSession, *, where: ReviewFilter, cursor: int | None, limit: int
) -> ReviewPage:
    """A page of reviews, newest first, with their comments (`GET /api/v1/reviews`)."""
    rows = await repository.list_reviews(session, where=where, before_id=cursor, limit=limit)
    items = [review_out(review) for review in rows]
    return ReviewPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


async def review_stats(
    session: AsyncSession, *, first: date, last: date, by: ReviewsBy
) -> ReviewStats:
    """Average, count and distribution of the people's reviews given in [first, last]
    (whole UTC days), per product (its platform id, else its sku) or per category."""
    counts = await repository.star_counts(
        session, start=day_start(first), end=day_start(last + timedelta(days=1))
    )
    stars: defaultdict[str | None, list[int]] = defaultdict(lambda: [0] * 5)
    names: dict[str | None, str | None] = {}
    for product_ref, sku, name, category, given, reviews in counts:
        key = category if by == "category" else product_ref or sku
        stars[key][given - 1] += reviews
        if by == "product":
            names[key] = names.get(key) or name
    rows = [
        ReviewStatsRow(
            key=key,
            name=names.get(key),
            reviews=sum(spread),
            average=round(sum((n + 1) * c for n, c in enumerate(spread)) / sum(spread), 2),
            stars_1=spread[0],
            stars_2=spread[1],
            stars_3=spread[2],
            stars_4=spread[3],
            stars_5=spread[4],
        )
        for key, spread in sorted(stars.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    return ReviewStats.model_validate({"from": first, "to": last, "by": by, "rows": rows})
