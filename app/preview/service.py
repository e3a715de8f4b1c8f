"""One message rendered and composed as the dispatcher would, without a database.

A preview takes the body of an `order.created` webhook (`OrderPlaced`) and builds the
template context with the dispatcher's own `build_context`, reading the webhook's customer,
order and items where the dispatcher reads their rows. A test send uses the same path, or
the rules linter's sample data when no order is given, and marks the subject.

Previews are neither signed (DKIM) nor rate-limited: they are not sent. Test sends are
both, like every message that goes out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.item_links import links_for_shop
from app.catalog.links import CatalogItem, ItemKey
from app.catalog.recommender import Recommender, RecommendRequest, item_refs
from app.config import Settings
from app.coupons.codes import sample_coupon
from app.events import ItemIn, OrderIn, OrderPlaced
from app.mail.compose import ComposedMessage, compose_message, message_bytes
from app.mail.context import build_context
from app.mail.templates import TemplateRenderer
from app.mail.unsubscribe import (
    SAMPLE_CUSTOMER_ID,
    marketing_unsubscribe_mailto,
    marketing_unsubscribe_url,
)
from app.models import MessageKind
from app.orders.repository import customer_id_for
from app.preview.lint import SAMPLE_CONTEXT
from app.reviews.links import sample_answered_review_context, sample_review_context
from app.rules.facts import ItemFacts, item_facts
from app.rules.model import REVIEW_ANSWERED, Rule
from app.survey.links import sample_survey_context, survey_kind

TEST_SUBJECT_PREFIX = "[TEST] "


@dataclass(frozen=True)
class OrderView:
    """A webhook's order under the names of the `Order` row that `build_context` reads."""

    external_id: str
    number: str | None
    total: Decimal | None
    currency: str | None
    placed_at: datetime | None
    attributes: Mapping[str, Any]

    @classmethod
    def of(cls, order: OrderIn) -> OrderView:
        return cls(
            external_id=order.id,
            number=order.number,
            total=order.total,
            currency=order.currency,
            placed_at=order.created_at,
            attributes=order.attributes,
        )


@dataclass(frozen=True)
class ComposedEmail:
    subject: str
    text: str
    html: str
    message: ComposedMessage
    message_id: str

    @property
    def eml(self) -> bytes:
        """The whole message as it would go over SMTP (before DKIM signing)."""
        return message_bytes(self.message)


def rule_template(rule: Rule) -> str:
    """The template a preview or test of `rule` shows: its first variant's, if it has any."""
    return rule.templates[0]


def compose_preview(
    *,
    settings: Settings,
    renderer: TemplateRenderer,
    template: str,
    event: OrderPlaced,
    shop: str,
    rule: Rule | None,
    locale: str | None,
    now: datetime,
    recommendations: Sequence[Mapping[str, Any]] | None = None,
    catalog: Mapping[ItemKey, CatalogItem] | None = None,
) -> ComposedEmail:
    """The message `template` makes for the order and customer of `event`, addressed to them.

    `rule` decides what the dispatcher takes from it: the kind (marketing mail carries the
    unsubscribe link and headers) and the `items` filter (the template's `items`). Without
    one the mail is transactional and `items` is every item. `locale` replaces the
    customer's; `shop` is whose customer it is (whose links the mail carries);
    `recommendations` what the catalog picked for a rule with `recommend`
    (`preview_recommendations`). `catalog`: what the catalog knows of the items
    (`catalog_for_items`); without it, items have the links their ids and REORDER_URL make.
    TemplateError or ValueError when it cannot be made.
    """
    return _order_email(
        settings=settings,
        renderer=renderer,
        template=template,
        event=event,
        shop=shop,
        rule=rule,
        to_address=str(event.customer.email),
        locale=locale,
        now=now,
        recommendations=recommendations,
        catalog=catalog,
    )


def compose_test_send(
    *,
    settings: Settings,
    renderer: TemplateRenderer,
    rule: Rule,
    to_address: str,
    event: OrderPlaced | None,
    shop: str,
    locale: str | None,
    now: datetime,
) -> ComposedEmail:
    """The message of `rule` for `to_address`, subject marked "[TEST] ".

    From `event`'s order and customer when given, else from the rules linter's sample data.
    A marketing rule's unsubscribe link is a sample naming no customer: using it shows the
    pages and unsubscribes nobody.
    """
    if event is not None:
        return _order_email(
            settings=settings,
            renderer=renderer,
            template=rule_template(rule),
            event=event,
            shop=shop,
            rule=rule,
            to_address=to_address,
            locale=locale,
            now=now,
            subject_prefix=TEST_SUBJECT_PREFIX,
        )
    unsubscribe_url = _unsubscribe_url(settings, kind=rule.kind)
    context: dict[str, Any] = copy.deepcopy(SAMPLE_CONTEXT)
    context["unsubscribe_url"] = unsubscribe_url
    context["coupon"] = _sample_coupon(rule)
    context["survey"] = sample_survey_context(settings.public_url, survey_kind(rule))
    context["review"] = _sample_review(settings, rule, context["items"])
    if rule.recommend is None:
        context["recommendations"] = []  # what the rule's mail gets
    links = links_for_shop(settings, shop)
    context["shop"] = {**context["shop"], "url": links.url, "address": links.address}
    context["links"] = links.resolve(rule.links)
    if locale is not None:
        context["customer"]["locale"] = locale
    return _compose(
        settings=settings,
        renderer=renderer,
        template=rule_template(rule),
        locale=context["customer"]["locale"],
        context=context,
        to_name=None,
        to_address=to_address,
        unsubscribe_url=unsubscribe_url,
        now=now,
        subject_prefix=TEST_SUBJECT_PREFIX,
    )


async def preview_recommendations(
    session: AsyncSession,
    *,
    recommender: Recommender,
    event: OrderPlaced,
    shop: str,
    rule: Rule | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """What the catalog would recommend in `rule`'s mail for the order of `event`, as the
    dispatcher asks it (the same seeds, the customer's purchases if the shop knows them)."""
    if rule is None or rule.recommend is None:
        return []
    item_filter = rule.when.items
    items = event.order.items
    seeds = [
        item for item in items if item_filter is None or item_filter.matches(_facts(item))
    ] or list(items)
    request = RecommendRequest(
        key="preview",
        shop=shop,
        customer_id=await customer_id_for(
            session, shop=shop, external_id=event.customer.id, email=str(event.customer.email)
        ),
        spec=rule.recommend,
        items=item_refs(seeds),
        categories=[item.category for item in seeds if item.category],
    )
    found = await recommender.pick(session, [request], now=now)
    return found.get("preview", [])


def _order_email(
    *,
    settings: Settings,
    renderer: TemplateRenderer,
    template: str,
    event: OrderPlaced,
    shop: str,
    rule: Rule | None,
    to_address: str,
    locale: str | None,
    now: datetime,
    subject_prefix: str = "",
    recommendations: Sequence[Mapping[str, Any]] | None = None,
    catalog: Mapping[ItemKey, CatalogItem] | None = None,
) -> ComposedEmail:
    customer = event.customer
    if locale is not None:
        customer = customer.model_copy(update={"locale": locale})
    kind = rule.kind if rule is not None else MessageKind.TRANSACTIONAL
    unsubscribe_url = _unsubscribe_url(settings, kind=kind)
    items = event.order.items
    item_filter = rule.when.items if rule is not None else None
    matched = [item for item in items if item_filter is None or item_filter.matches(_facts(item))]
    context = build_context(
        customer=customer,
        order=OrderView.of(event.order),
        items=items,
        matched_items=matched,
        send_at=now,
        shop_name=_shop_name(settings),
        unsubscribe_url=unsubscribe_url,
        coupon=_sample_coupon(rule),
        recommendations=recommendations if rule is not None and rule.recommend else None,
        # Sample links: they show the thank-you page and record nothing.
        survey=sample_survey_context(settings.public_url, survey_kind(rule)),
        review=_sample_review(
            settings,
            rule,
            [{"name": item.name, "sku": item.sku, "category": item.category} for item in matched],
        ),
        links=links_for_shop(settings, shop, catalog),
        rule_links=rule.links if rule is not None else None,
    )
    return _compose(
        settings=settings,
        renderer=renderer,
        template=template,
        locale=customer.locale,
        context=context,
        to_name=" ".join(filter(None, [customer.first_name, customer.last_name])) or None,
        to_address=to_address,
        unsubscribe_url=unsubscribe_url,
        now=now,
        subject_prefix=subject_prefix,
    )


def _compose(
    *,
    settings: Settings,
    renderer: TemplateRenderer,
    template: str,
    locale: str | None,
    context: dict[str, Any],
    to_name: str | None,
    to_address: str,
    unsubscribe_url: str | None,
    now: datetime,
    subject_prefix: str = "",
) -> ComposedEmail:
    # The same arguments as the dispatcher's render and compose_message calls.
    rendered = renderer.render(template, locale=locale, context=context)
    if subject_prefix:
        rendered = replace(rendered, subject=subject_prefix + rendered.subject)
    from_name, from_address = settings.from_address
    message, message_id = compose_message(
        rendered=rendered,
        from_name=from_name,
        from_address=from_address,
        to_name=to_name,
        to_address=to_address,
        message_id_domain=settings.sender_domain,
        now=now,
        reply_to=settings.reply_to,
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=_unsubscribe_mailto(settings, unsubscribe_url),
    )
    return ComposedEmail(
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message=message,
        message_id=message_id,
    )


def _unsubscribe_url(settings: Settings, *, kind: str) -> str | None:
    # A sample token that names no customer: using a preview's or a test's link shows the
    # pages and changes nobody's consent.
    return marketing_unsubscribe_url(
        kind=kind,
        public_url=settings.public_url,
        customer_id=SAMPLE_CUSTOMER_ID,
        secrets=settings.unsubscribe_secrets,
    )


def _unsubscribe_mailto(settings: Settings, unsubscribe_url: str | None) -> str | None:
    if unsubscribe_url is None:
        return None
    return marketing_unsubscribe_mailto(
        kind=MessageKind.MARKETING,
        customer_id=SAMPLE_CUSTOMER_ID,
        domain=settings.inbound_domain,
        secrets=settings.unsubscribe_secrets,
    )


def _sample_review(
    settings: Settings, rule: Rule | None, items: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """`review` as the rule's mail gets it: the items to rate (links that record nothing),
    or, for a review.answered rule, a sample 2-star review with a comment; else None."""
    if rule is None:
        return None
    if rule.when.event == REVIEW_ANSWERED:
        return sample_answered_review_context(items)
    if rule.review is not None:
        return sample_review_context(settings.public_url, items, rule.review.per)
    return None


def _sample_coupon(rule: Rule | None) -> dict[str, Any] | None:
    # A stand-in that no shop accepts: a preview never takes a code from the pool.
    if rule is None or rule.coupon is None:
        return None
    return sample_coupon(rule.coupon.pool).context()


def _shop_name(settings: Settings) -> str:
    # What the dispatcher puts in `shop.name`.
    return settings.from_address[0] or settings.public_url


def _facts(item: ItemIn) -> ItemFacts:
    return item_facts(
        sku=item.sku,
        category=item.category,
        quantity=item.quantity,
        unit_price=item.unit_price,
        tags=item.tags,
        attributes=dict(item.attributes),
        product=None,  # a sample order: its items say what they are
    )
