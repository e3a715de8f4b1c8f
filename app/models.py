"""ORM tables. Every datetime is timezone-aware UTC; every id a shop sends is kept as text."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, MappedColumn, joinedload, mapped_column, relationship

from app.db import Base, BigIntPK, UtcDateTime, utcnow
from app.rules.facts import ItemFacts, ProductFacts, item_facts

# The stored values live in a module without SQLAlchemy, so pure decisions can name them.
from app.statuses import FeedbackKind as FeedbackKind
from app.statuses import MessageKind as MessageKind
from app.statuses import MessageStatus as MessageStatus
from app.statuses import OrderStatus as OrderStatus

Money = Numeric(18, 4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("shop", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shop: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    birthday: Mapped[date | None] = mapped_column(Date)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the customer unsubscribed from marketing through our link, page or mailto: while
    # set, a shop's webhook saying "consents" does not turn marketing back on (only the
    # customer's own resubscribe does). See app/unsubscribe/service.py.
    marketing_opt_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # occurred_at of the event that last wrote this row: an older event arriving late loses.
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Order(TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop", "external_id"),
        # A shop's latest purchases: what best-seller recommendations count.
        Index("ix_orders_shop_placed_at", "shop", "placed_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shop: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(64))
    # Null while only a cancellation has arrived for an order we have not seen created yet.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))
    # What the customer knows the order by (Shopify's name without its "#", WooCommerce's
    # number); None: the external id is the number.
    number: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    total: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.OPEN)
    placed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When it reached the customer (a carrier's "delivered", or our order.delivered).
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refunded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Partial refunds as received, [{"sku": ..., "quantity": ...}]: kept apart from the items
    # so a refund that arrives before its order still applies once the items come.
    refunds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Discount codes the order used, as the shop sent them (coupons link to it by these).
    discount_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The order's own fields from the checkout (Shopify's note_attributes), for templates.
    # Personal text (a gift message): erasure empties it.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The platform's ids of what was bought, as text (Shopify product_id/variant_id,
    # WooCommerce product_id/variation_id, our JSON's product_id/variant_id); null when the
    # order does not say (a Shopify custom item, a CSV import).
    # Indexed: a product that arrives late finds the recent items that name it.
    product_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    variant_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # The catalog's product (and variant) the item was resolved to; null until the catalog
    # knows it (matched again when the product arrives late). A product row is never
    # deleted by the app (it keeps `deleted_at`), but erasing a shop may remove it.
    catalog_product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), index=True
    )
    catalog_variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("product_variants.id", ondelete="SET NULL")
    )
    # Read-only, and never loaded behind the caller's back: whoever reads items for rules
    # loads their products with them (`with_products()`), or an item built from an INSERT's
    # RETURNING is given its product (a forgotten one raises instead of matching wrongly).
    catalog_product: Mapped[Product | None] = relationship(
        foreign_keys=[catalog_product_id], viewonly=True, lazy="raise"
    )
    catalog_variant: Mapped[ProductVariant | None] = relationship(
        foreign_keys=[catalog_variant_id], viewonly=True, lazy="raise"
    )

    def facts(self, quantity: int | None = None) -> ItemFacts:
        """What rules look at (filters, quantities, item anchors), its catalog product's data
        included; `quantity` if some of the item was refunded."""
        product = self.catalog_product
        return item_facts(
            sku=self.sku,
            category=self.category,
            quantity=self.quantity if quantity is None else quantity,
            unit_price=self.unit_price,
            tags=self.tags,
            attributes=dict(self.attributes),
            product=product.facts() if product is not None else None,
        )


def with_products() -> Any:
    """The loader option for order items read for rules: their catalog product in the same
    statement (a LEFT OUTER JOIN, no extra round trip)."""
    return joinedload(OrderItem.catalog_product)


class WebhookDelivery(Base):
    """Every accepted delivery, once: the unique key is what makes retries harmless."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("source", "shop", "delivery_id"),
        Index(
            "ix_webhook_deliveries_queued",
            "id",
            postgresql_where=text("queued"),
            sqlite_where=text("queued"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    shop: Mapped[str] = mapped_column(String(255))
    delivery_id: Mapped[str] = mapped_column(String(255))
    # The platform's topic header as received (our own JSON: its `type`), so it can be replayed.
    event_type: Mapped[str] = mapped_column(String(64))
    # The raw body as received, stored before mapping; emptied when its customer is erased or
    # it ages out (raw_payload_retention_days).
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # Whose data the body holds, so erasure and export can find it.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    # Stored by the request, not yet applied (AFTERSALE_INTAKE_MODE=queued): a worker maps
    # and applies it, oldest first (app/intake/queue.py).
    queued: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Message(TimestampMixin, Base):
    """The outbox: one row per planned email, and the single source of truth for sending it."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    rule_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_version: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    # One message per (rule, order or date occurrence, customer), whatever repeats upstream.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.SCHEDULED)
    status_reason: Mapped[str | None] = mapped_column(String(64))
    send_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When a worker may next take the row: the send or retry time while `scheduled`, the
    # lease expiry while `sending`. One column, so one index range finds all claimable work.
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    recipient: Mapped[str | None] = mapped_column(String(320))
    # Indexed: bounces and provider webhooks that return only our Message-ID find it here.
    smtp_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When it was last paused: RULE_GRACE counts from here (not updated_at, which other
    # writes such as erasure or a rename also move).
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Its place in the rule's sequence: 1 is the rule's own message, 2... its `steps`, each
    # planned when the one before is decided (app/lifecycle/steps.py).
    step: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # When the sequence's event happened (order placed, fulfilled, ...): `from: event` counts
    # from here, and `exit: {purchased}` looks at purchases since.
    event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MessageAttempt(Base):
    """One row per delivery attempt, so an operator can read a message's history."""

    __tablename__ = "message_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class Erasure(Base):
    """Someone erased: one-way digests of their shop customer id and address, and when.

    Intake reads it so that events about them that arrive late store nothing and plan
    nothing (docs/privacy.md), and every suppression of their address keeps only the digest.
    No personal data: a digest cannot be turned back into the address.
    """

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_shop_subject", "shop", "subject"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shop: Mapped[str] = mapped_column(String(255))
    # email_digest() of the address, or of "id:<external id>"
    subject: Mapped[str] = mapped_column(String(80))
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PrivacyRequest(Base):
    """A data access request from a platform (Shopify `customers/data_request`), with the
    export we produced for it when it came in, for the shop to hand to the person.

    The export is personal data: erasure of the customer, or of the shop, clears it and the
    shop's id for them. `subject` is the digest of the address the request named, so that an
    erasure finds requests that matched no customer row.
    """

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_shop_subject", "shop", "subject"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shop: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    # The shop's id for the customer, as the request named it; None once erased.
    customer_ref: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str | None] = mapped_column(String(80))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    export: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SenderPause(Base):
    """A worker that paused sending after sender-side SMTP failures (app/mail/breaker.py).

    One row per paused worker, deleted when it resumes, so `/readyz` and `/metrics` of any
    process can say that sending is paused, until when, and why. No personal data: the
    reason is the server's reply to connecting, AUTH or MAIL FROM.
    """

    __tablename__ = "sender_pauses"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime)
    paused_until: Mapped[datetime] = mapped_column(UtcDateTime)
    failures: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)


class SuppressionReason(enum.StrEnum):
    # Written by the unsubscribe link before it meant marketing only; such entries keep
    # stopping all mail, as the page then promised ("Stop all emails").
    UNSUBSCRIBE = "unsubscribe"
    # "Stop all email from this shop" on the unsubscribe page.
    UNSUBSCRIBE_ALL = "unsubscribe_all"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class Suppression(Base):
    """Addresses we must not mail, whatever a rule says. Stored lower-cased."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SuppressionRemoval(Base):
    """One address taken off the suppression list, with what the entry said and who took it
    off: the undo of a wrong suppression stays visible. Erasure swaps the address for its
    digest, as it does on the list."""

    __tablename__ = "suppression_removals"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    suppressed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # cli, api, page (the customer's own undo of "stop all email")
    source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)


class ConsentChange(Base):
    """A customer's marketing consent (or all mail) switched by the customer: when, how and
    through what. Stats count its marketing unsubscribes."""

    __tablename__ = "consent_changes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    shop: Mapped[str] = mapped_column(String(255))
    # The address it was made for; emptied by erasure.
    email: Mapped[str | None] = mapped_column(String(320))
    # marketing_off, marketing_on, all_off, all_on (see ConsentChangeKind)
    change: Mapped[str] = mapped_column(String(16))
    # one-click, page, mailto
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsentChangeKind(enum.StrEnum):
    MARKETING_OFF = "marketing_off"
    MARKETING_ON = "marketing_on"
    ALL_OFF = "all_off"
    ALL_ON = "all_on"


class MailFeedbackEvent(Base):
    """One bounce or complaint reported after sending: by DSN or ARF mail, or a provider's
    webhook (docs/deliverability.md). Once per (provider, provider_event_id), so a redelivered
    report changes nothing. `recipient` and `detail` (which often quotes the address) are
    personal data: erasure clears them."""

    __tablename__ = "mail_feedback_events"
    __table_args__ = (UniqueConstraint("provider", "provider_event_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The message it is about, when the report names one we sent.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    provider_event_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RepurchaseGap(Base):
    """One observed repurchase: a customer bought what a learned rule is about again.

    Learned intervals average the latest of these per rule (docs/rules.md). One row per
    (rule, order), so a redelivered order is never counted twice.
    """

    __tablename__ = "repurchase_gaps"
    __table_args__ = (
        UniqueConstraint("rule_id", "order_id"),
        Index("ix_repurchase_gaps_rule_latest", "rule_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    # log(days per unit) since the customer's previous purchase for this rule.
    log_days: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TrackedLinkKind(enum.StrEnum):
    LINK = "link"  # a link of the message; clicks redirect to its url
    HONEYPOT = "honeypot"  # hidden from readers, so whatever follows it is a machine
    PIXEL = "pixel"  # the open pixel


class TrackedLink(Base):
    """One tracked URL of a sent message: what a tracking token names.

    Written when the message is composed, before it is sent: a click can only ever go to the
    `url` stored here, never to anything in the request.
    """

    __tablename__ = "tracked_links"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    # Order in the message: HTML links, then the text part's, then honeypot and pixel.
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    # The token's 128 random bits (hex), compared here so a token needs more than a secret.
    token_nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TrackingEvent(Base):
    """One open or click, as it came, with its class (human, machine, unknown) and reason.

    Every request is kept, so unique and total counts of people and machines both derive
    from here. No full IP: `ip` holds its /24 (IPv4) or /48 (IPv6) network.
    """

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_message_time", "message_id", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    # The clicked link; None for opens, and once links are pruned.
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracked_links.id", ondelete="SET NULL"), index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    class_: Mapped[str] = mapped_column("class", String(16))
    reason: Mapped[str] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))


class SurveyAnswer(Base):
    """One answer to a message's survey (NPS 0-10, CSAT 1-5, CES 1-7), as it came.

    Every request that answered is kept with its class and reason, like tracking events;
    NPS takes each message's latest counted answer (app/survey/nps.py). `comment` is what
    the customer wrote on the thank-you page: personal data, erased with the customer, as
    are `user_agent` and `ip` (a /24 or /48 network, never the address).
    """

    __tablename__ = "survey_answers"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 10", name="score_range"),
        # Each kind's scale (app/survey/scales.py); NPS is the range above.
        CheckConstraint(
            "kind = 'nps' OR (kind = 'csat' AND score BETWEEN 1 AND 5) "
            "OR (kind = 'ces' AND score BETWEEN 1 AND 7)",
            name="score_fits_kind",
        ),
        # A message's answers in time order: the latest answer, bursts.
        Index("ix_survey_answers_message_time", "message_id", "answered_at"),
        # NPS of a span reads only answers given since its first day.
        Index("ix_survey_answers_answered_at", "answered_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    # The survey's kind (nps, csat, ces), from the signed token: the scale of `score`.
    kind: Mapped[str] = mapped_column(String(8), default="nps", server_default="nps")
    class_: Mapped[str] = mapped_column("class", String(16))
    reason: Mapped[str] = mapped_column(String(32))
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
    commented_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))


class ProductReview(Base):
    """One product's review from a review request (`review.items` in mail): the stars a
    one-click link gave, and the comment written after; one row per (message, item).

    A later click on the same item replaces the stars, as a changed mind; clicks of other
    stars within the burst window make the row a scanner's (class `machine`, never counted).
    The product is copied from the order item, so stats and the reviews API need no join
    and survive the item. `comment`, `user_agent` and `ip` are personal data, blanked with
    the customer; the stars stay (docs/privacy.md).
    """

    __tablename__ = "product_reviews"
    __table_args__ = (
        CheckConstraint("stars >= 1 AND stars <= 5", name="stars_range"),
        UniqueConstraint("message_id", "item_position"),
        Index("ix_product_reviews_answered_at", "answered_at"),
        Index("ix_product_reviews_product", "product_ref", "variant_ref"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    # The order item's position (order_items.position): which line the stars are for.
    item_position: Mapped[int] = mapped_column(Integer)
    product_ref: Mapped[str | None] = mapped_column(String(64))
    variant_ref: Mapped[str | None] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(255))
    catalog_product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), index=True
    )
    stars: Mapped[int] = mapped_column(Integer)
    class_: Mapped[str] = mapped_column("class", String(16))
    reason: Mapped[str] = mapped_column(String(32))
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
    commented_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))


class IntakeFailure(Base):
    """An authentic delivery whose payload could not be mapped to one of our events.

    The raw body stays in its webhook_deliveries row (one copy, which erasure and retention
    already handle), so the delivery can be replayed once the mapping is fixed. Resolved
    when a replay or a redelivery went through (`replayed_at`).
    """

    __tablename__ = "intake_failures"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    webhook_delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), unique=True
    )
    # Names fields, never their values: it is listed by the API and logged.
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    replayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    replay_result: Mapped[str | None] = mapped_column(String(255))


class Conversion(Base):
    """An order credited to the message that brought it, or a held-out customer's order
    (docs/stats.md). One per order, so a redelivered order never converts twice."""

    __tablename__ = "conversions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    via: Mapped[str] = mapped_column(String(8))  # click, open or holdout
    revenue: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    converted_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the order was placed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CouponCode(Base):
    """One code of a coupon pool (docs/rules.md, "Coupons").

    Handed to at most one message, ever: `assigned_at` stays set even if the message goes,
    so a code is never given out twice. `shop` None: for any shop's customers.
    """

    __tablename__ = "coupon_codes"
    __table_args__ = (
        UniqueConstraint("pool", "code"),
        # The claim takes the oldest free code of a pool: only free codes are indexed, in
        # import order, so it stays cheap however many were handed out before. (By `id`
        # alone, PostgreSQL would walk the primary key past every code handed out.)
        Index(
            "ix_coupon_codes_free",
            "pool",
            "imported_at",
            "id",
            postgresql_where=text("assigned_at IS NULL"),
            sqlite_where=text("assigned_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pool: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    # The code lower-cased: orders name the codes they used in any case, and this is what
    # they are looked up by (an expression index would not reflect on SQLite).
    code_key: Mapped[str] = mapped_column(String(64), index=True)
    shop: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Unique: one code per message, however many workers or retries ask for it.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    redeemed_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StatsSeries(Base):
    """One line of running totals: the counts of a (rule, variant, template, step), or its
    revenue in one currency. Few rows: the stats API starts from here."""

    __tablename__ = "stats_series"
    __table_args__ = (UniqueConstraint("rule_id", "variant", "template", "step", "currency"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    # The messages' place in the rule's sequence (messages.step): 1 for a rule without steps.
    step: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # '' for none: NULL would make every row unique to the constraint.
    variant: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(128))
    # '' for the series of counts; a currency code for a series of revenue.
    currency: Mapped[str] = mapped_column(String(3))


def _counter() -> MappedColumn[int]:
    return mapped_column(BigInteger, default=0)


class StatsTotals(Base):
    """Running totals of a series of counts up to and including `day` (UTC), for the
    messages of that day (sent that day; if never sent, due that day).

    A row exists only for days on which something changed; the totals on any day are the
    latest row on or before it. Any span then costs two rows per series, however many
    events there were (docs/stats.md).
    """

    __tablename__ = "stats_totals"

    series_id: Mapped[int] = mapped_column(
        ForeignKey("stats_series.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    planned: Mapped[int] = _counter()
    scheduled: Mapped[int] = _counter()
    sent: Mapped[int] = _counter()
    failed: Mapped[int] = _counter()
    bounced: Mapped[int] = _counter()
    bounced_async: Mapped[int] = _counter()
    soft_bounced: Mapped[int] = _counter()
    complained: Mapped[int] = _counter()
    skipped: Mapped[int] = _counter()
    cancelled: Mapped[int] = _counter()
    expired: Mapped[int] = _counter()
    held_out: Mapped[int] = _counter()
    opened: Mapped[int] = _counter()
    opens: Mapped[int] = _counter()
    opened_machine: Mapped[int] = _counter()
    opens_machine: Mapped[int] = _counter()
    opened_unknown: Mapped[int] = _counter()
    opens_unknown: Mapped[int] = _counter()
    clicked: Mapped[int] = _counter()
    clicks: Mapped[int] = _counter()
    clicked_machine: Mapped[int] = _counter()
    clicks_machine: Mapped[int] = _counter()
    clicked_unknown: Mapped[int] = _counter()
    clicks_unknown: Mapped[int] = _counter()
    unsubscribed: Mapped[int] = _counter()
    converted: Mapped[int] = _counter()
    conversions: Mapped[int] = _counter()
    held_out_converted: Mapped[int] = _counter()
    held_out_conversions: Mapped[int] = _counter()


class StatsRevenueTotals(Base):
    """Running revenue of a series of revenue up to and including `day`, like StatsTotals."""

    __tablename__ = "stats_revenue_totals"

    series_id: Mapped[int] = mapped_column(
        ForeignKey("stats_series.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    revenue: Mapped[Decimal] = mapped_column(Money, default=0)


class StatsMessage(Base):
    """What the running totals hold of one message: where it is counted and its own counts.

    Folding compares a message with this row, so repeats change nothing, and a message that
    changes status or day moves everything it counted. No foreign key: the counts outlive
    the message.
    """

    __tablename__ = "stats_messages"
    __table_args__ = (Index("ix_stats_messages_status", "status"),)

    message_id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    series_id: Mapped[int] = mapped_column(ForeignKey("stats_series.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    # Reported after the server accepted it (DSN, ARF, provider webhooks).
    bounced_async: Mapped[bool] = mapped_column(Boolean, default=False)
    soft_bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    complained: Mapped[bool] = mapped_column(Boolean, default=False)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    opens_machine: Mapped[int] = mapped_column(Integer, default=0)
    opens_unknown: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    clicks_machine: Mapped[int] = mapped_column(Integer, default=0)
    clicks_unknown: Mapped[int] = mapped_column(Integer, default=0)
    unsubscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    conversions: Mapped[int] = mapped_column(Integer, default=0)


class StatsWatermark(Base):
    """How far the rollup job has folded each source table; the `lock` row serializes runs.

    Ids are taken in insert order but committed in any order, so an id becomes safe to fold
    only once it was the newest a while ago (`candidate_id`, `candidate_at`).
    """

    __tablename__ = "stats_watermarks"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    folded_id: Mapped[int] = mapped_column(BigInteger, default=0)
    candidate_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Product(TimestampMixin, Base):
    """One product of a shop's catalog, as its platform (or our JSON) last described it.

    Variants are in `product_variants`. `external_id` is the platform's product id; it is
    null only for a product imported from Shopify's CSV export (which has no ids): such a
    row is found by `handle` until a webhook gives it its id. Rows are never deleted: a
    product removed by the shop keeps its row with `deleted_at`, so old orders still
    resolve to it.
    """

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("shop", "external_id"),
        Index("ix_products_shop_handle", "shop", "handle"),
        # New arrivals: a shop's products by when they first appeared.
        Index("ix_products_shop_first_seen", "shop", "first_seen_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shop: Mapped[str] = mapped_column(String(255))
    # shopify, woocommerce or custom (our JSON): what reorder links are built for.
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(64))
    handle: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    product_type: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255))
    # The shop's category paths, root first, as the shop names them: Shopify's taxonomy
    # (one path), WooCommerce's category slugs with their parents (one path per category).
    category_paths: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    # The lowest variant price (or what the platform gives for the product), in `currency`.
    price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    # Published (Shopify `active`, WooCommerce `publish`), and any variant can be bought.
    active: Mapped[bool] = mapped_column(Boolean)
    in_stock: Mapped[bool] = mapped_column(Boolean)
    # The platform's creation time when it sent one, else when aftersale first saw it.
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The platform's updated_at of the payload that last wrote this row: an older one loses.
    source_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def facts(self) -> ProductFacts:
        """What rules look at of the product an order item resolved to."""
        return ProductFacts(
            product_type=self.product_type,
            vendor=self.vendor,
            category_paths=tuple(tuple(path) for path in self.category_paths),
            tags=tuple(self.tags),
        )


class ProductVariant(TimestampMixin, Base):
    """One purchasable variant of a product: what an order item names by id or SKU.

    A product without options has one variant (WooCommerce: the simple product itself, its
    id as the variant id). `shop` is the product's, repeated so that lookups by the ids and
    SKUs of an order's items read this table alone.
    """

    __tablename__ = "product_variants"
    __table_args__ = (
        UniqueConstraint("product_id", "external_id"),
        Index("ix_product_variants_shop_external_id", "shop", "external_id"),
        Index("ix_product_variants_shop_sku", "shop", "sku"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    shop: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(500))
    price: Mapped[Decimal | None] = mapped_column(Money)
    in_stock: Mapped[bool] = mapped_column(Boolean)
    inventory_quantity: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    source_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
