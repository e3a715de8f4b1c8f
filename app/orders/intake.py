"""Nothing lost: every authentic delivery is stored raw before it is mapped.

A delivery whose payload cannot be mapped (a shape we did not expect) is kept as an intake
failure with the error, listed at `GET /api/v1/intake/failures`, and replayed with
`aftersale intake replay` once the mapping is fixed. The delivery's unique key still makes
repeats harmless: a redelivery of a failed delivery is mapped again (and resolves the failure
when it goes through), a repeat of one that went through is a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import IntakeFailure
from app.orders import intake_repository, repository, service, shopify, woocommerce
from app.orders.platforms import PayloadError, decode_json, describe
from app.orders.schemas import Envelope, IntakeResult, parse_body
from app.rules.loader import RuleSet
from app.stats.service import attribution_policy

log = logging.getLogger(__name__)

# Our own signed JSON, `POST /webhooks/orders`.
AFTERSALE_SOURCE = "aftersale"
_TOPICS = {shopify.SOURCE: shopify.TOPICS, woocommerce.SOURCE: woocommerce.TOPICS}


@dataclass(frozen=True)
class Delivery:
    """One delivery as received, with what mapping it needs from its headers."""

    source: str
    shop: str
    delivery_id: str
    topic: str  # the platform's topic header; our own JSON carries its type in the body
    body: bytes | str


class InvalidEvent(PayloadError):
    """Our own JSON that is not a valid event. `errors` (pydantic's, with the input values)
    are for the sender's 422 answer only; the message, which names fields, is what is kept."""

    def __init__(self, exc: ValidationError) -> None:
        super().__init__(describe(exc))
        self.errors: list[ErrorDetails] = exc.errors(include_url=False)


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: `accepted` or `duplicate` (with `result`), `ignored`
    (nothing for us in it), `unmapped` (kept as failure `failure_id`, `error` says why)."""

    status: Literal["accepted", "duplicate", "ignored", "unmapped"]
    delivery_id: str
    result: IntakeResult | None = None
    reason: str = ""
    error: PayloadError | None = None
    failure_id: int | None = None


def map_delivery(
    delivery: Delivery, *, received_at: datetime, settings: Settings
) -> Envelope | None:
    """The event of a delivery, by the current code; None when there is nothing for us in it.

    `received_at` stands in for payloads that carry no time of their own. Raises PayloadError
    (InvalidEvent for our own JSON) when the payload cannot be read.
    """
    if delivery.source == AFTERSALE_SOURCE:
        try:
            # Our own JSON's topic is the `type` the body claimed (endpoints._claimed).
            return parse_body(delivery.body, claimed_type=delivery.topic)
        except ValidationError as exc:
            raise InvalidEvent(exc) from None
    payload = decode_json(delivery.body)
    if delivery.source == shopify.SOURCE:
        return shopify.to_event(
            delivery.topic, payload, event_id=delivery.delivery_id, received_at=received_at
        )
    if delivery.source == woocommerce.SOURCE:
        return woocommerce.to_event(
            delivery.topic,
            payload,
            event_id=delivery.delivery_id,
            received_at=received_at,
            consent_meta_key=settings.woocommerce_consent_meta_key,
        )
    raise PayloadError(f"no mapping for deliveries from {delivery.source!r}")


async def take_delivery(
    session: AsyncSession,
    *,
    delivery: Delivery,
    received_at: datetime,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """Store the delivery raw, then map and ingest it in the caller's transaction; a payload
    that cannot be mapped is kept as an intake failure."""
    body = _text(delivery.body)
    row = await repository.record_delivery(
        session,
        source=delivery.source,
        shop=delivery.shop,
        delivery_id=delivery.delivery_id,
        event_type=delivery.topic,
        body=body,
        received_at=now,
    )
    failure = None
    if row is None:
        failure = await intake_repository.open_failure_of(
            session, source=delivery.source, shop=delivery.shop, delivery_id=delivery.delivery_id
        )
        if failure is None:
            return Outcome(
                status="duplicate",
                delivery_id=delivery.delivery_id,
                result=IntakeResult(status="duplicate", event_id=delivery.delivery_id),
            )
        # A new copy of a delivery that failed: the sender may have fixed it (our own JSON
        # under the same event id), so it is what is kept and replayed from now on.
        row = failure.webhook_delivery_id
        await intake_repository.replace_body(session, delivery=row, body=body)
    return await _map_and_ingest(
        session,
        delivery=delivery,
        row=row,
        failure=failure,
        received_at=received_at,
        rules=rules,
        settings=settings,
        now=now,
        resolved_by="redelivered",
    )


async def replay_failure(
    session: AsyncSession, *, failure_id: int, rules: RuleSet, settings: Settings, now: datetime
) -> Outcome | None:
    """Map and ingest a failed delivery again with the current code and rules; None when
    there is no such failure. A resolved one is not ingested twice: `duplicate`."""
    found = await intake_repository.failure_with_delivery(session, failure_id)
    if found is None:
        return None
    failure, stored = found
    if failure.replayed_at is not None:
        return Outcome(
            status="duplicate",
            delivery_id=stored.delivery_id,
            reason=f"resolved at {failure.replayed_at.isoformat()}: {failure.replay_result}",
            failure_id=failure.id,
        )
    if not stored.body:
        # Erased with its shop or customer: there is nothing left to map.
        failure.attempts += 1
        failure.error = "the raw body was erased; nothing to replay"
        await session.flush()
        return Outcome(
            status="unmapped",
            delivery_id=stored.delivery_id,
            reason=failure.error,
            error=PayloadError(failure.error),
            failure_id=failure.id,
        )
    delivery = Delivery(
        source=stored.source,
        shop=stored.shop,
        delivery_id=stored.delivery_id,
        topic=stored.event_type,
        body=stored.body,
    )
    return await _map_and_ingest(
        session,
        delivery=delivery,
        row=stored.id,
        failure=failure,
        # The time it arrived stands in, as the time it was sent did then.
        received_at=stored.received_at,
        rules=rules,
        settings=settings,
        now=now,
        resolved_by="replayed",
    )


async def _map_and_ingest(
    session: AsyncSession,
    *,
    delivery: Delivery,
    row: int,
    failure: IntakeFailure | None,
    received_at: datetime,
    rules: RuleSet,
    settings: Settings,
    now: datetime,
    resolved_by: str,
) -> Outcome:
    try:
        event = map_delivery(delivery, received_at=received_at, settings=settings)
    except PayloadError as exc:
        failure = await intake_repository.record_failure(
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
    if event is None:
        reason = _ignored_reason(delivery)
        if failure is not None:
            await intake_repository.resolve(
                session, failure, result=f"{resolved_by}: ignored ({reason})", now=now
            )
        return Outcome(status="ignored", delivery_id=delivery.delivery_id, reason=reason)
    result = await service.apply_event(
        session,
        delivery=row,
        shop=delivery.shop,
        event=event,
        rules=rules,
        now=now,
        default_time_zone=settings.default_time_zone,
        attribution=attribution_policy(settings),
    )
    if failure is not None:
        await intake_repository.resolve(
            session,
            failure,
            result=f"{resolved_by}: accepted ({result.messages_planned} planned, "
            f"{result.messages_cancelled} cancelled)",
            now=now,
        )
    return Outcome(status="accepted", delivery_id=delivery.delivery_id, result=result)


def _ignored_reason(delivery: Delivery) -> str:
    if delivery.topic in _TOPICS.get(delivery.source, ()):
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
