"""All SQL of the outbox: claiming due messages and recording what happened to them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.links import CatalogItem, ItemKey
from app.lifecycle.checks import RULE_MISSING
from app.lifecycle.flows import answered_review_id
from app.models import (
    Conversion,
    Customer,
    MailFeedbackEvent,
    Message,
    MessageAttempt,
    MessageStatus,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    ProductReview,
    SenderPause,
    Suppression,
    SurveyAnswer,
    TrackedLink,
    TrackingEvent,
    with_products,
)
from app.privacy import email_digest
from app.rules.facts import ProductFacts, item_facts
from app.statuses import EventClass, EventKind


async def claim_due_messages(
    session: AsyncSession, *, worker_id: str, now: datetime, lease: timedelta, limit: int
) -> list[int]:
    """Take up to `limit` due messages for this worker, and return their ids.

    Due means scheduled with `next_attempt_at` passed, or `sending` with an expired lease
    (its worker died). On PostgreSQL, SKIP LOCKED lets many workers claim side by side
    without waiting for or taking each other's rows; on SQLite the single UPDATE holds the
    database write lock, which gives the same exclusivity.
    """
    due = (
        select(Message.id)
        .where(
            Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.SENDING]),
            Message.next_attempt_at <= now,
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(
            status=MessageStatus.SENDING,
            claimed_by=worker_id,
            next_attempt_at=now + lease,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return list((await session.execute(statement)).scalars().all())


@dataclass(frozen=True)
class SendContext:
    """Everything the dispatcher needs to decide, render and send one claimed message."""

    message: Message
    customer: Customer
    order: Order | None
    items: Sequence[OrderItem]
    suppressed: bool
    # The product review a review.answered rule's message follows up (None for any other).
    review: ProductReview | None = None
    # What the catalog knows of the items (their pages, images, ids for reorder links):
    # filled in for the whole batch by the dispatcher (`catalog_for_items`).
    catalog: Mapping[ItemKey, CatalogItem] = field(default_factory=dict)


async def load_send_contexts(session: AsyncSession, ids: Sequence[int]) -> list[SendContext]:
    if not ids:
        return []
    rows = (
        await session.execute(
            select(Message, Customer, Order)
            .join(Customer, Customer.id == Message.customer_id)
            .outerjoin(Order, Order.id == Message.order_id)
            .where(Message.id.in_(ids))
            .order_by(Message.id)
        )
    ).all()
    order_ids = {order.id for _, _, order in rows if order is not None}
    items_by_order: dict[int, list[OrderItem]] = {}
    if order_ids:
        items = (
            await session.execute(
                select(OrderItem)
                .where(OrderItem.order_id.in_(order_ids))
                .options(with_products())
                .order_by(OrderItem.order_id, OrderItem.position)
            )
        ).scalars()
        for item in items:
            items_by_order.setdefault(item.order_id, []).append(item)
    emails = {customer.email.lower() for _, customer, _ in rows if customer.email}
    # An erased customer's suppression is kept as a digest of the address (app/privacy.py).
    digests = {email_digest(email): email for email in emails}
    suppressed: set[str] = set()
    if emails:
        found = (
            await session.execute(
                select(Suppression.email).where(Suppression.email.in_([*emails, *digests]))
            )
        ).scalars()
        suppressed = {digests.get(key, key) for key in found}
    reviews = await _answered_reviews(session, [message for message, _, _ in rows])
    return [
        SendContext(
            message=message,
            customer=customer,
            order=order,
            items=items_by_order.get(order.id, []) if order else [],
            suppressed=(customer.email or "").lower() in suppressed,
            review=reviews.get(message.id),
        )
        for message, customer, order in rows
    ]


async def _answered_reviews(
    session: AsyncSession, messages: Sequence[Message]
) -> dict[int, ProductReview]:
    """By message id, the review each review.answered message follows up (its dedupe key
    names it), if it is still there and the customer's own."""
    wanted = {
        message.id: review_id
        for message in messages
        if (review_id := answered_review_id(message.rule_id, message.dedupe_key)) is not None
    }
    if not wanted:
        return {}
    found = {
        review.id: review
        for review in (
            await session.execute(
                select(ProductReview).where(ProductReview.id.in_(set(wanted.values())))
            )
        ).scalars()
    }
    owners = {message.id: message.customer_id for message in messages}
    return {
        message_id: found[review_id]
        for message_id, review_id in wanted.items()
        if review_id in found and found[review_id].customer_id == owners[message_id]
    }


# The statements of every send are built once and reused with parameters: building and
# keying a statement per message cost more than executing it. They name the tables, not the
# mapped classes, so they skip the ORM's DML layer (there is no object to keep in step).
_MESSAGES = cast(Table, Message.__table__)
_ADD_ATTEMPT = insert(cast(Table, MessageAttempt.__table__))
# A worker records only messages it still holds: if its lease ran out and another worker
# took the row, the late write must not overwrite the newer outcome. Parameters: _owner().
_OWNED = (
    _MESSAGES.c.id == bindparam("owned_id"),
    _MESSAGES.c.status == MessageStatus.SENDING,
    _MESSAGES.c.claimed_by == bindparam("owned_by"),
)

_RETRY_VALUES: dict[str, object] = {
    "status": MessageStatus.SCHEDULED,
    "next_attempt_at": bindparam("next_attempt_at"),
    "last_error": bindparam("last_error"),
    "claimed_by": None,
    "updated_at": bindparam("updated_at"),
}
_RETRY = update(_MESSAGES).where(*_OWNED).values(_RETRY_VALUES)
_RETRY_UNCOUNTED = (
    update(_MESSAGES).where(*_OWNED).values(_RETRY_VALUES | {"attempts": _MESSAGES.c.attempts - 1})
)


def _owner(message_id: int, worker_id: str) -> dict[str, object]:
    return {"owned_id": message_id, "owned_by": worker_id}


async def _add_attempt(
    session: AsyncSession,
    *,
    message_id: int,
    attempt: int,
    at: datetime,
    outcome: str,
    smtp_code: int | None,
    detail: str | None,
) -> None:
    await session.execute(
        _ADD_ATTEMPT,
        {
            "message_id": message_id,
            "attempt": attempt,
            "attempted_at": at,
            "outcome": outcome,
            "smtp_code": smtp_code,
            "detail": detail,
        },
    )


async def finish_message(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    status: MessageStatus,
    now: datetime,
    reason: str | None = None,
    recipient: str | None = None,
    smtp_message_id: str | None = None,
    smtp_code: int | None = None,
    error: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Move a claimed message to a final state; returns False if this worker lost it."""
    finish = Finish(
        message_id=message_id,
        status=status,
        now=now,
        reason=reason,
        recipient=recipient,
        smtp_message_id=smtp_message_id,
        smtp_code=smtp_code,
        error=error,
        attempt=attempt,
    )
    (owned,) = await finish_messages(session, worker_id=worker_id, finishes=[finish])
    return owned


@dataclass(frozen=True)
class Finish:
    """A claimed message's final state, as `finish_messages` records it."""

    message_id: int
    status: MessageStatus
    now: datetime
    reason: str | None = None
    recipient: str | None = None
    smtp_message_id: str | None = None
    smtp_code: int | None = None
    error: str | None = None
    # The attempt row to add (its number), None for none.
    attempt: int | None = None

    def values(self) -> dict[str, object]:
        """The message row's columns this writes."""
        written: dict[str, object] = {
            "status": self.status,
            "status_reason": self.reason,
            "claimed_by": None,
            "updated_at": self.now,
        }
        if self.status == MessageStatus.SENT:
            written.update(
                sent_at=self.now, recipient=self.recipient, smtp_message_id=self.smtp_message_id
            )
        if self.error is not None:
            written["last_error"] = self.error
        return written


async def finish_messages(
    session: AsyncSession, *, worker_id: str, finishes: Sequence[Finish]
) -> list[bool]:
    """Move claimed messages to their final states, with an attempt row each where asked:
    a statement per set of columns written (one for a batch that all went) and one for the
    attempt rows. Whether this worker still held each message (False: another took it)."""
    by_columns: dict[frozenset[str], list[tuple[Finish, dict[str, object]]]] = {}
    for finish in finishes:
        written = finish.values()
        by_columns.setdefault(frozenset(written), []).append((finish, written))
    owned: set[int] = set()
    for columns, rows in by_columns.items():
        if len(rows) == 1:
            finish, written = rows[0]
            result = await session.execute(
                _finish_statement(columns), _owner(finish.message_id, worker_id) | written
            )
            if result.rowcount:  # type: ignore[attr-defined]
                owned.add(finish.message_id)
        else:
            # Padded to a power of two with repeats of the last row (the same values for the
            # same row again), so that a handful of statements, each compiled once, serve
            # every group size.
            size = 1 << (len(rows) - 1).bit_length()
            padded = rows + [rows[-1]] * (size - len(rows))
            parameters: dict[str, object] = {"owned_by": worker_id}
            for index, (finish, written) in enumerate(padded):
                parameters[f"r{index}_id"] = finish.message_id
                parameters.update({f"r{index}_{name}": value for name, value in written.items()})
            result = await session.execute(_finish_many_statement(columns, size), parameters)
            owned.update(result.scalars())
    attempts = [
        {
            "message_id": finish.message_id,
            "attempt": finish.attempt,
            "attempted_at": finish.now,
            "outcome": finish.status.value,
            "smtp_code": finish.smtp_code,
            "detail": finish.error or finish.reason,
        }
        for finish in finishes
        if finish.attempt is not None and finish.message_id in owned
    ]
    if attempts:
        await session.execute(_ADD_ATTEMPT, attempts)
    return [finish.message_id in owned for finish in finishes]


@lru_cache(maxsize=64)
def _finish_many_statement(columns: frozenset[str], size: int) -> Update:
    """One UPDATE for `size` messages, their values joined from a CTE (parameters
    `r<row>_<column>`), owned rows only; RETURNING the ids it updated."""
    names = ["id", *sorted(columns)]
    # SELECTs joined by UNION ALL rather than a VALUES list: SQLAlchemy caches the compiled
    # form of this one (not of `values()`), and the asyncpg dialect casts each parameter.
    rows = [
        select(
            *(
                bindparam(f"r{row}_{name}", type_=_MESSAGES.c[name].type).label(name)
                for name in names
            )
        )
        for row in range(size)
    ]
    given = union_all(*rows).cte("finished")
    return (
        update(_MESSAGES)
        .where(
            _MESSAGES.c.id == given.c.id,
            _MESSAGES.c.status == MessageStatus.SENDING,
            _MESSAGES.c.claimed_by == bindparam("owned_by"),
        )
        .values({name: given.c[name] for name in sorted(columns)})
        .returning(_MESSAGES.c.id)
    )


async def end_abandoned_message(
    session: AsyncSession,
    *,
    message_id: int,
    status: MessageStatus,
    reason: str,
    detail: str,
    now: datetime,
) -> bool:
    """Give a `sending` message whose lease has run out a final state, as an operator asked;
    False when it is no longer that (a worker took it again meanwhile)."""
    result = await session.execute(
        update(_MESSAGES)
        .where(
            _MESSAGES.c.id == message_id,
            _MESSAGES.c.status == MessageStatus.SENDING,
            _MESSAGES.c.next_attempt_at <= now,
        )
        .values(status=status, status_reason=reason, claimed_by=None, updated_at=now)
        .returning(_MESSAGES.c.attempts)
    )
    attempt = result.scalar_one_or_none()
    if attempt is None:
        return False
    # The attempt that never finished gets its row, so the history says how it ended.
    await _add_attempt(
        session,
        message_id=message_id,
        attempt=attempt,
        at=now,
        outcome=status.value,
        smtp_code=None,
        detail=detail,
    )
    return True


# One statement per set of columns written (a handful).
@lru_cache(maxsize=8)
def _finish_statement(columns: frozenset[str]) -> Update:
    return (
        update(_MESSAGES)
        .where(*_OWNED)
        .values({column: bindparam(column) for column in sorted(columns)})
    )


async def retry_message(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    retry_at: datetime,
    now: datetime,
    attempt: int,
    smtp_code: int | None,
    error: str,
    sender_fault: bool = False,
) -> bool:
    """Put a message back in the queue for another try at `retry_at`.

    A `sender_fault` (our credentials, sender or server) was no try at this recipient: it
    does not count toward MAX_ATTEMPTS, so a day with a wrong password loses no message.
    """
    result = await session.execute(
        _RETRY_UNCOUNTED if sender_fault else _RETRY,
        _owner(message_id, worker_id)
        | {"next_attempt_at": retry_at, "last_error": error, "updated_at": now},
    )
    owned = bool(result.rowcount)  # type: ignore[attr-defined]
    if owned:
        await _add_attempt(
            session,
            message_id=message_id,
            attempt=attempt,
            at=now,
            outcome="sender_fault" if sender_fault else "retry",
            smtp_code=smtp_code,
            detail=error,
        )
    return owned


async def release_message(
    session: AsyncSession, *, message_id: int, worker_id: str, now: datetime
) -> None:
    """Hand an unstarted message back (on shutdown), without counting an attempt."""
    await session.execute(
        update(_MESSAGES)
        .where(*_OWNED)
        .values(
            status=MessageStatus.SCHEDULED,
            next_attempt_at=now,
            attempts=_MESSAGES.c.attempts - 1,
            claimed_by=None,
            updated_at=now,
        ),
        _owner(message_id, worker_id),
    )


async def renew_leases(
    session: AsyncSession, *, ids: Sequence[int], worker_id: str, until: datetime
) -> int:
    """Extend the lease of this worker's messages still in flight."""
    result = await session.execute(
        update(Message)
        .where(
            Message.id.in_(ids),
            Message.status == MessageStatus.SENDING,
            Message.claimed_by == worker_id,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def defer_message(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    until: datetime,
    now: datetime,
    reason: str,
) -> bool:
    """Put a message back until `until` without counting an attempt (e.g. frequency cap)."""
    result = await session.execute(
        update(_MESSAGES)
        .where(*_OWNED)
        .values(
            status=MessageStatus.SCHEDULED,
            status_reason=reason,
            next_attempt_at=until,
            attempts=_MESSAGES.c.attempts - 1,
            claimed_by=None,
            updated_at=now,
        ),
        _owner(message_id, worker_id),
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pause_message(
    session: AsyncSession, *, message_id: int, worker_id: str, now: datetime
) -> bool:
    """Hold a claimed message whose rule is missing (`paused`, `rule_missing`), no attempt
    used. It was due now, so it is due at once when the rule comes back."""
    result = await session.execute(
        update(_MESSAGES)
        .where(*_OWNED)
        .values(
            status=MessageStatus.PAUSED,
            status_reason=RULE_MISSING,
            next_attempt_at=now,
            attempts=_MESSAGES.c.attempts - 1,
            claimed_by=None,
            paused_at=now,
            updated_at=now,
        ),
        _owner(message_id, worker_id),
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CapEntry:
    """Another message of the customer that may count against a frequency cap."""

    id: int
    rule_id: str
    kind: str
    status: str
    sent_at: datetime | None


async def cap_usage(
    session: AsyncSession, *, customer_ids: Collection[int], since: datetime, now: datetime
) -> dict[int, list[CapEntry]]:
    """Per customer, their messages sent since `since` and those due or in flight now.

    One query for a whole batch; each message then leaves itself out and keeps what its
    own caps look back on."""
    if not customer_ids:
        return {}
    rows = await session.execute(
        select(
            Message.customer_id,
            Message.id,
            Message.rule_id,
            Message.kind,
            Message.status,
            Message.sent_at,
        ).where(
            Message.customer_id.in_(customer_ids),
            or_(
                and_(Message.status == MessageStatus.SENT, Message.sent_at > since),
                Message.status == MessageStatus.SENDING,
                and_(
                    Message.status == MessageStatus.SCHEDULED,
                    Message.next_attempt_at <= now,
                ),
            ),
        )
    )
    usage: dict[int, list[CapEntry]] = {}
    for customer_id, id_, rule_id, kind, status, sent_at in rows:
        usage.setdefault(customer_id, []).append(CapEntry(id_, rule_id, kind, status, sent_at))
    return usage


async def record_sender_pause(
    session: AsyncSession,
    *,
    worker_id: str,
    paused_at: datetime,
    paused_until: datetime,
    failures: int,
    reason: str,
) -> None:
    """Say that this worker paused sending (one row per worker, the latest pause)."""
    await session.execute(delete(SenderPause).where(SenderPause.worker_id == worker_id))
    session.add(
        SenderPause(
            worker_id=worker_id,
            paused_at=paused_at,
            paused_until=paused_until,
            failures=failures,
            reason=reason,
        )
    )
    await session.flush()


async def clear_sender_pause(session: AsyncSession, *, worker_id: str) -> None:
    await session.execute(delete(SenderPause).where(SenderPause.worker_id == worker_id))


async def list_messages(
    session: AsyncSession,
    *,
    email: str | None,
    order_id: str | None,
    rule: str | None,
    status: str | None,
    before_id: int | None,
    limit: int,
    first_day: date | None = None,
    last_day: date | None = None,
) -> list[tuple[Message, str | None, str | None]]:
    """Newest first, keyset-paged by id: (message, customer email, order's shop id).

    `first_day` and `last_day` (UTC days, both included) bound when the message went out,
    or for one not sent (yet), its send time."""
    statement = (
        select(Message, Customer.email, Order.external_id)
        .join(Customer, Customer.id == Message.customer_id)
        .outerjoin(Order, Order.id == Message.order_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if email:
        statement = statement.where(Customer.email == email.lower())
    if order_id:
        statement = statement.where(Order.external_id == order_id)
    if rule:
        statement = statement.where(Message.rule_id == rule)
    if status:
        statement = statement.where(Message.status == status)
    if before_id is not None:
        statement = statement.where(Message.id < before_id)
    when = func.coalesce(Message.sent_at, Message.send_at)
    if first_day is not None:
        statement = statement.where(when >= datetime.combine(first_day, time.min, UTC))
    if last_day is not None and last_day < date.max:  # the last day there is: no bound
        next_day = datetime.combine(last_day, time.min, UTC) + timedelta(days=1)
        statement = statement.where(when < next_day)
    return [(row[0], row[1], row[2]) for row in (await session.execute(statement)).all()]


async def get_message(
    session: AsyncSession, message_id: int
) -> tuple[Message, str | None, str | None] | None:
    row = (
        await session.execute(
            select(Message, Customer.email, Order.external_id)
            .join(Customer, Customer.id == Message.customer_id)
            .outerjoin(Order, Order.id == Message.order_id)
            .where(Message.id == message_id)
            .with_for_update(of=Message)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


@dataclass(frozen=True)
class MessageHistory:
    """A message and what happened to it, for an operator reading one (`messages show`)."""

    message: Message
    email: str | None
    order_id: str | None
    attempts: list[MessageAttempt]
    tracking: list[tuple[TrackingEvent, str | None]]  # (event, URL of the link clicked)
    feedback: list[MailFeedbackEvent]
    conversions: list[tuple[Conversion, str | None]]  # (conversion, shop's order id)


async def message_history(session: AsyncSession, message_id: int) -> MessageHistory | None:
    found = (
        await session.execute(
            select(Message, Customer.email, Order.external_id)
            .join(Customer, Customer.id == Message.customer_id)
            .outerjoin(Order, Order.id == Message.order_id)
            .where(Message.id == message_id)
        )
    ).first()
    if found is None:
        return None
    attempts = await session.execute(
        select(MessageAttempt)
        .where(MessageAttempt.message_id == message_id)
        .order_by(MessageAttempt.id)
    )
    tracking = await session.execute(
        select(TrackingEvent, TrackedLink.url)
        .outerjoin(TrackedLink, TrackedLink.id == TrackingEvent.link_id)
        .where(TrackingEvent.message_id == message_id)
        .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    )
    feedback = await session.execute(
        select(MailFeedbackEvent)
        .where(MailFeedbackEvent.message_id == message_id)
        .order_by(MailFeedbackEvent.id)
    )
    conversions = await session.execute(
        select(Conversion, Order.external_id)
        .join(Order, Order.id == Conversion.order_id)
        .where(Conversion.message_id == message_id)
        .order_by(Conversion.converted_at, Conversion.id)
    )
    return MessageHistory(
        message=found[0],
        email=found[1],
        order_id=found[2],
        attempts=list(attempts.scalars()),
        tracking=[(event, url) for event, url in tracking.all()],
        feedback=list(feedback.scalars()),
        conversions=[(conversion, order_id) for conversion, order_id in conversions.all()],
    )


@dataclass(frozen=True)
class PlacedItem:
    order_id: int
    placed_at: datetime
    sku: str | None
    category: str | None
    # Its categories as rules compare them (its catalog product's, else its own).
    categories: tuple[str, ...] = ()


async def load_order_history(
    session: AsyncSession, customer_ids: Sequence[int]
) -> dict[int, list[PlacedItem]]:
    """Items of each customer's orders that stand (not cancelled or refunded), by customer."""
    if not customer_ids:
        return {}
    rows = await session.execute(
        select(
            Order.customer_id,
            Order.id,
            Order.placed_at,
            OrderItem.sku,
            OrderItem.category,
            Product.category_paths,
            Product.product_type,
        )
        .join(OrderItem, OrderItem.order_id == Order.id)
        .outerjoin(Product, Product.id == OrderItem.catalog_product_id)
        .where(
            Order.customer_id.in_(customer_ids),
            Order.placed_at.is_not(None),
            Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        )
    )
    history: dict[int, list[PlacedItem]] = {}
    for customer_id, order_id, placed_at, sku, category, paths, product_type in rows:
        assert customer_id is not None and placed_at is not None  # filtered in the query
        product = (
            ProductFacts(
                product_type=product_type, category_paths=tuple(tuple(p) for p in paths or ())
            )
            if paths is not None
            else None
        )
        facts = item_facts(
            sku=sku,
            category=category,
            quantity=1,
            unit_price=None,
            tags=(),
            attributes={},
            product=product,
        )
        history.setdefault(customer_id, []).append(
            PlacedItem(
                order_id=order_id,
                placed_at=placed_at,
                sku=sku,
                category=category,
                categories=facts.categories,
            )
        )
    return history


async def standing_order_counts(
    session: AsyncSession, customer_ids: Collection[int]
) -> dict[int, int]:
    """How many standing orders (placed, not cancelled or refunded) each customer has now;
    a customer with none is left out. One statement."""
    if not customer_ids:
        return {}
    rows = await session.execute(
        select(Order.customer_id, func.count())
        .where(
            Order.customer_id.in_(customer_ids),
            Order.placed_at.is_not(None),
            Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        )
        .group_by(Order.customer_id)
    )
    return {customer_id: int(count) for customer_id, count in rows if customer_id is not None}


@dataclass(frozen=True)
class PreviousStep:
    """What a sequence's next step is decided on about the step before it."""

    # When it went, or when it was due when it was skipped.
    at: datetime
    opened: bool
    clicked: bool
    answered: bool


async def load_previous_steps(
    session: AsyncSession, dedupe_keys: Collection[str]
) -> dict[str, PreviousStep]:
    """The previous steps of a batch's sequence messages, by dedupe key, in one query: when
    each was sent (or due), and whether a person opened it, clicked in it or answered its
    survey (a mail scanner's opens and clicks, and machine answers, do not count)."""
    if not dedupe_keys:
        return {}

    def human(kind: EventKind) -> ColumnElement[bool]:
        return (
            select(TrackingEvent.id)
            .where(
                TrackingEvent.message_id == Message.id,
                TrackingEvent.kind == kind.value,
                TrackingEvent.class_ == EventClass.HUMAN.value,
            )
            .exists()
        )

    answered = (
        select(SurveyAnswer.id)
        .where(
            SurveyAnswer.message_id == Message.id,
            SurveyAnswer.class_ != EventClass.MACHINE.value,
        )
        .exists()
    )
    rows = await session.execute(
        select(
            Message.dedupe_key,
            Message.sent_at,
            Message.send_at,
            human(EventKind.OPEN),
            human(EventKind.CLICK),
            answered,
        ).where(Message.dedupe_key.in_(dedupe_keys))
    )
    return {
        key: PreviousStep(at=sent_at or send_at, opened=opened, clicked=clicked, answered=answered_)
        for key, sent_at, send_at, opened, clicked, answered_ in rows
    }
