"""Nothing lost: every authentic delivery is stored raw before it is mapped.

A delivery whose payload cannot be mapped (a shape we did not expect) is kept as an intake
failure with the error, listed at `GET /api/v1/intake/failures`, and replayed with
`aftersale intake replay` once the mapping is fixed. The delivery's unique key still makes
repeats harmless: a redelivery of a failed delivery is mapped again (and resolves the failure
when it goes through), a repeat of one that went through is a duplicate.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.erasures import names_the_erased
from app.events import Envelope, IntakeResult
from app.intake import repository
from app.intake.effects import intake_effects
from app.intake.payloads import PayloadError, decode_json, describe, run_mapper
from app.intake.platform import MapContext, Platform
from app.models import IntakeFailure, WebhookDelivery
from app.orders import repository as orders_repository
from app.orders import service as orders
from app.rules.loader import RuleSet
from app.stats.service import attribution_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One delivery as received, with what mapping it needs from its headers."""

    source: str
    shop: str
    delivery_id: str
    topic: str  # the platform's topic header; our own JSON carries its type in the body
    body: bytes | str


def stored_delivery(stored: WebhookDelivery) -> Delivery:
    """A delivery as it was received, from its stored row (to replay or apply it)."""
    return Delivery(
        source=stored.source,
        shop=stored.shop,
        delivery_id=stored.delivery_id,
        topic=stored.event_type,
        body=stored.body,
    )


class InvalidEvent(PayloadError):
    """Our own JSON that is not a valid event. `errors` (pydantic's, with the input values)
    are for the sender's 422 answer only; the message, which names fields, is what is kept."""

    def __init__(self, exc: ValidationError) -> None:
        super().__init__(describe(exc))
        self.errors: list[ErrorDetails] = exc.errors(include_url=False)


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: `accepted`, `queued` (for a worker to apply) or `duplicate`
    (with `result`), `ignored` (nothing for us in it), `unmapped` (kept as failure
    `failure_id`, `error` says why)."""

    status: Literal["accepted", "queued", "duplicate", "ignored", "unmapped"]
    delivery_id: str
    result: IntakeResult | None = None
    reason: str = ""
    error: PayloadError | None = None
    failure_id: int | None = None


def map_delivery(
    platform: Platform, delivery: Delivery, *, received_at: datetime, settings: Settings
) -> list[Envelope]:
    """The events of an order or customer delivery by the current code, in the order to
    apply them; none when there is nothing for us in it.

    `received_at` stands in for payloads that carry no time of their own. Raises PayloadError
    (InvalidEvent for our own JSON) when the payload cannot be read.
    """
    if platform.body_mapper is not None:
        try:
            return list(platform.body_mapper(delivery.body, delivery.topic))
        except ValidationError as exc:
            raise InvalidEvent(exc) from None
    mapper = platform.mappers.get(delivery.topic)
    if mapper is None:
        return []
    context = MapContext(event_id=delivery.delivery_id, received_at=received_at, settings=settings)
    return run_mapper(mapper, delivery.topic, decode_json(delivery.body), context)


async def take_delivery(
    sessions: async_sessionmaker[AsyncSession],
    *,
    platform: Platform,
    delivery: Delivery,
    received_at: datetime,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """Store the delivery raw, then map and ingest it in one transaction; a payload that
    cannot be mapped is kept as an intake failure.

    With `settings.intake_mode` "queued", a delivery that maps to events is stored queued
    instead, for a worker to apply (`queue.py`): the request only verifies, maps (so our own
    JSON's sender still hears of an invalid body) and stores, in one statement that commits
    on its own, without a session or a transaction around it.
    """
    body = _text(delivery.body)
    fields: dict[str, Any] = {
        "source": delivery.source,
        "shop": delivery.shop,
        "delivery_id": delivery.delivery_id,
        "event_type": delivery.topic,
        "body": body,
        "received_at": now,
    }
    events: list[Envelope] = []
    if settings.intake_mode == "queued" and not platform.product_topic(delivery.topic):
        # One that cannot be mapped is mapped again below, and kept as a failure there.
        with suppress(PayloadError):
            events = map_delivery(platform, delivery, received_at=received_at, settings=settings)
    if events:
        stored = await orders_repository.record_delivery_at_once(sessions, **fields, queued=True)
        if stored is not None:
            return Outcome(
                status="queued",
                delivery_id=delivery.delivery_id,
                result=IntakeResult(status="queued", event_id=events[0].id),
            )
    async with transaction(sessions) as session:
        # Seen before when queueing found it so; else stored here, in this transaction.
        row = None if events else await orders_repository.record_delivery(session, **fields)
        failure = None
        if row is None:
            failure = await repository.open_failure_of(
                session,
                source=delivery.source,
                shop=delivery.shop,
                delivery_id=delivery.delivery_id,
            )
            if failure is None:
                return Outcome(
                    status="duplicate",
                    delivery_id=delivery.delivery_id,
                    result=IntakeResult(status="duplicate", event_id=delivery.delivery_id),
                )
            # A new copy of a delivery that failed: the sender may have fixed it (our own
            # JSON under the same event id), so it is what is kept and replayed from now on.
            row = failure.webhook_delivery_id
            await repository.replace_body(session, delivery=row, body=body)
        return await map_and_ingest(
            session,
            platform=platform,
            delivery=delivery,
            row=row,
            failure=failure,
            received_at=received_at,
            rules=rules,
            settings=settings,
            now=now,
            resolved_by="redelivered",
        )


async def map_and_ingest(
    session: AsyncSession,
    *,
    platform: Platform,
    delivery: Delivery,
    row: int,
    failure: IntakeFailure | None,
    received_at: datetime,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
    resolved_by: str,
) -> Outcome:
    """Map the recorded delivery (row `row`) and apply what it says; a payload that cannot be
    mapped is kept as an intake failure (`failure`, when it failed before)."""
    try:
        if platform.product_topic(delivery.topic):
            return await _ingest_product(
                session,
                platform=platform,
                delivery=delivery,
                failure=failure,
                received_at=received_at,
                rules=rules,
                settings=settings,
                now=now,
                resolved_by=resolved_by,
            )
        events = map_delivery(platform, delivery, received_at=received_at, settings=settings)
    except PayloadError as exc:
        failure = await repository.record_failure(
            session, delivery=row, failure=failure, error=str(exc), now=now
        )
        # The error names fields, never their values: safe for the logs. Our own JSON's
        # sender is told (422); a platform's failure only an operator will see.
        log.log(
            logging.WARNING if isinstance(exc, InvalidEvent) else logging.ERROR,
            "%s %r from %s (delivery %s) not mapped, kept as intake failure %d: %s",
            delivery.source,
            delivery.topic,
            delivery.shop,
            delivery.delivery_id,
            failure.id,
            exc,
        )
        return Outcome(
            status="unmapped",
            delivery_id=delivery.delivery_id,
            reason=str(exc),
            error=exc,
            failure_id=failure.id,
        )
    if not events:
        reason = _ignored_reason(platform, delivery)
        if await names_the_erased(session, shop=delivery.shop, body=_text(delivery.body)):
            # Nothing for us in it, and about someone erased: not even the body is kept.
            await orders_repository.blank_delivery(session, delivery=row)
        if failure is not None:
            await repository.resolve(
                session, failure, result=f"{resolved_by}: ignored ({reason})", now=now
            )
        return Outcome(status="ignored", delivery_id=delivery.delivery_id, reason=reason)
    result = IntakeResult(status="accepted", event_id=events[0].id)
    statuses = set()
    for event in events:
        applied = await orders.apply_event(
            session,
            delivery=row,
            shop=delivery.shop,
            event=event,
            rules=rules,
            now=now,
            default_time_zone=settings.default_time_zone,
            effects=intake_effects(attribution=attribution_policy(settings)),
        )
        result.messages_planned += applied.messages_planned
        result.messages_cancelled += applied.messages_cancelled
        statuses.add(applied.status)
    if statuses == {"ignored"}:
        result.status = "ignored"  # all about someone erased: nothing was stored
    if failure is not None:
        await repository.resolve(
            session,
            failure,
            result=f"{resolved_by}: accepted ({result.messages_planned} planned, "
            f"{result.messages_cancelled} cancelled)",
            now=now,
        )
    return Outcome(status="accepted", delivery_id=delivery.delivery_id, result=result)


async def _ingest_product(
    session: AsyncSession,
    *,
    platform: Platform,
    delivery: Delivery,
    failure: IntakeFailure | None,
    received_at: datetime,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
    resolved_by: str,
) -> Outcome:
    """A product delivery, through the platform's product slot (the catalog)."""
    products = platform.products
    assert products is not None
    context = MapContext(
        event_id=delivery.delivery_id,
        received_at=received_at,
        settings=settings,
        topic=delivery.topic,
        shop=delivery.shop,
    )
    try:
        change = products.mapper(decode_json(delivery.body), context)
    except PayloadError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PayloadError(f"{delivery.topic}: {describe(exc)}") from None
    result = None
    if change is None:
        status: Literal["accepted", "ignored"] = "ignored"
        reason = _ignored_reason(platform, delivery)
    else:
        planned = await products.apply(
            session, shop=delivery.shop, change=change, now=now, rules=rules, settings=settings
        )
        status, reason = "accepted", ""
        result = IntakeResult(
            status="accepted", event_id=delivery.delivery_id, messages_planned=planned
        )
    if failure is not None:
        await repository.resolve(
            session, failure, result=f"{resolved_by}: {status} (product)", now=now
        )
    return Outcome(status=status, delivery_id=delivery.delivery_id, result=result, reason=reason)


def _ignored_reason(platform: Platform, delivery: Delivery) -> str:
    if delivery.topic in platform.topics:
        log.info(
            "%s %s from %s (delivery %s): nothing to do",
            delivery.source,
            delivery.topic,
            delivery.shop,
            delivery.delivery_id,
        )
        return f"nothing to do for this {delivery.topic}"
    log.info(
        "%s topic %r from %s is not handled; answered 200",
        delivery.source,
        delivery.topic,
        delivery.shop,
    )
    return f"topic {delivery.topic!r} is not handled"


def _text(body: bytes | str) -> str:
    # Kept as received; a body that is not UTF-8 or holds a NUL byte (which PostgreSQL text
    # cannot store, and JSON never contains raw) is kept readable rather than refused, and
    # fails mapping on its own.
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text.replace("\x00", "\ufffd")
