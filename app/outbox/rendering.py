"""A stored message rendered for an operator to read: as the dispatcher renders it, untracked.

The same rows, catalog links, rule and template context as the dispatcher's send
(`Dispatcher.build_message`), with what would act on a click left out: no tracking (links go
where the template says, and a click counts nowhere), and the unsubscribe, survey and
review links are the previews' samples that name nobody and record nothing. The coupon is
the code the message holds, if it took one; recommendations are what the catalog picks now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.item_links import catalog_for_items, links_for_shop
from app.catalog.recommender import Recommender
from app.config import Settings
from app.coupons.codes import sample_coupon
from app.coupons.repository import held_code
from app.mail.templates import TemplateError, TemplateRenderer
from app.mail.unsubscribe import SAMPLE_CUSTOMER_ID, marketing_unsubscribe_url
from app.models import OrderItem
from app.outbox import repository
from app.outbox.dispatcher import (
    answered_review,
    matched_items,
    recommend_requests,
    shop_of,
    template_context,
)
from app.outbox.repository import SendContext
from app.reviews.links import sample_review_context
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.survey.links import sample_survey_context, survey_kind


@dataclass(frozen=True, slots=True)
class OperatorRender:
    subject: str
    html: str
    text: str


class CannotRender(Exception):
    """The message cannot be shown: its customer was erased, or its template fails (the
    text says which)."""


async def render_for_operator(
    session: AsyncSession,
    *,
    settings: Settings,
    rules: RuleSet,
    message_id: int,
    now: datetime,
) -> OperatorRender | None:
    """The message as it goes (or went) out, untracked; None when there is no such message.

    CannotRender when its customer was erased (nothing personal is left to fill it with) or
    the template fails to render (TemplateError's text)."""
    contexts = await repository.load_send_contexts(session, [message_id])
    if not contexts:
        return None
    context = contexts[0]
    customer, message = context.customer, context.message
    if customer.deleted_at is not None or customer.email is None:
        raise CannotRender("its customer was erased: nothing is left to render it with")
    shop = shop_of(context)
    catalog = await catalog_for_items(session, [(shop, context.items)])
    context = replace(context, catalog=catalog.get(shop, {}))
    rule = rules.by_id(message.rule_id)
    matched = matched_items(context, rule)
    held = await held_code(session, message_id=message.id)
    coupon = held or (sample_coupon(rule.coupon.pool) if rule and rule.coupon else None)
    recommendations = None
    if rule is not None and rule.recommend is not None:
        # No cache: a page is asked for rarely, and shows the catalog as it is.
        recommender = Recommender.from_settings(
            settings.model_copy(update={"recommend_cache_seconds": 0})
        )
        found = await recommender.pick(session, recommend_requests([context], rules), now=now)
        recommendations = found.get(message.id, [])
    template_vars = template_context(
        settings,
        context,
        rule=rule,
        matched=matched,
        # Samples naming no customer: following them shows the pages and changes nothing.
        unsubscribe_url=marketing_unsubscribe_url(
            kind=message.kind,
            public_url=settings.public_url,
            customer_id=SAMPLE_CUSTOMER_ID,
            secrets=settings.unsubscribe_secrets,
        ),
        coupon=coupon.context() if coupon else None,
        recommendations=recommendations,
        survey=sample_survey_context(settings.public_url, survey_kind(rule)),
        review=_review(settings, context, rule, matched),
    )
    renderer = TemplateRenderer(
        settings.templates_dir,
        default_locale=settings.default_locale,
        time_limit=settings.render_timeout,
    )
    try:
        # Template files are read and rendered off the event loop.
        rendered = await asyncio.to_thread(
            renderer.render, message.template, locale=customer.locale, context=template_vars
        )
    except (TemplateError, ValueError) as exc:
        raise CannotRender(f"its template does not render: {exc}") from exc
    return OperatorRender(subject=rendered.subject, html=rendered.html, text=rendered.text)


def _review(
    settings: Settings, context: SendContext, rule: Rule | None, matched: Sequence[OrderItem]
) -> dict[str, Any] | None:
    """A review.answered message's review as sent (it is what the mail is about); a review
    request's star links as the previews' samples."""
    links = links_for_shop(settings, shop_of(context), context.catalog)
    if (answered := answered_review(context, rule, links)) is not None:
        return answered
    if rule is None or rule.review is None:
        return None
    items = [{"name": item.name, "sku": item.sku, "category": item.category} for item in matched]
    return sample_review_context(settings.public_url, items, rule.review.per)
