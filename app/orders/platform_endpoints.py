"""`POST /webhooks/shopify` and `POST /webhooks/woocommerce`: verify, map, then ingest.

The platform's payload becomes the same event `POST /webhooks/orders` takes, stored and planned
by `service.ingest_event` in the request's transaction. Every authentic delivery is answered
200, also one we ignore or cannot read: the platforms retry anything else, then disable the
webhook, and a retry of the same body would not help.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import RuntimeDep, SessionDep
from app.config import normalize_host, secrets_for_host
from app.orders import repository, service, shopify, signature, woocommerce
from app.orders.endpoints import DEFAULT_SHOP, read_limited_body
from app.orders.platforms import PayloadError, text
from app.orders.schemas import Envelope, IntakeResult
from app.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

MAX_DELIVERY_ID = 255  # webhook_deliveries.delivery_id


class DeliveryIgnored(BaseModel):
    """An authentic delivery that changed nothing: `ignored` (nothing for us in it) or
    `unmapped` (its payload could not be read; the error is logged)."""

    status: Literal["ignored", "unmapped"]
    reason: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or bad signature (or, for Shopify, shop domain)"},
    413: {"description": "Body over 1 MiB"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/webhooks/shopify",
    response_model=IntakeResult | DeliveryIgnored,
    summary="Receive a Shopify webhook (orders, fulfillments, refunds, customers, GDPR)",
    responses=_RESPONSES,
    openapi_extra=_BODY,
)
async def receive_shopify_webhook(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    x_shopify_topic: Annotated[str | None, Header()] = None,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_shop_domain: Annotated[str | None, Header()] = None,
    x_shopify_event_id: Annotated[str | None, Header()] = None,
    x_shopify_webhook_id: Annotated[str | None, Header()] = None,
    x_shopify_triggered_at: Annotated[str | None, Header()] = None,
) -> IntakeResult | DeliveryIgnored:
    body = await read_limited_body(request)
    shop = normalize_host(x_shopify_shop_domain)
    if shop is None:
        # Secrets are chosen by shop, so without one nothing can be verified.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Shopify-Shop-Domain")
    _verify(secrets_for_host(runtime.settings.shopify_secrets, shop), x_shopify_hmac_sha256, body)
    topic = (x_shopify_topic or "").strip()
    # The event id is shared by every delivery of one event; the webhook id by its retries.
    delivery_id = _delivery_id(x_shopify_event_id, x_shopify_webhook_id, body=body)
    if topic in shopify.RECORD_ONLY_TOPICS:
        log.info("shopify %s from %s (delivery %s): recorded only", topic, shop, delivery_id)
        return await _record_only(
            session,
            source=shopify.SOURCE,
            shop=shop,
            delivery_id=delivery_id,
            topic=topic,
            body=body,
        )
    now = runtime.clock.now()
    try:
        raw, payload = _decode(body)
        event = shopify.to_event(
            topic,
            payload,
            event_id=delivery_id,
            received_at=shopify.triggered_at(x_shopify_triggered_at, now),
        )
    except PayloadError as exc:
        return _unmapped(shopify.SOURCE, topic, shop, delivery_id, exc)
    if event is None:
        return _ignored(shopify.SOURCE, topic, shop, delivery_id, known=topic in shopify.TOPICS)
    return await _ingest(
        session, runtime, source=shopify.SOURCE, shop=shop, event=event, raw=raw, now=now
    )


@router.post(
    "/webhooks/woocommerce",
    response_model=IntakeResult | DeliveryIgnored,
    summary="Receive a WooCommerce webhook (orders, customers; the ping of a new webhook)",
    responses=_RESPONSES,
    openapi_extra=_BODY,
)
async def receive_woocommerce_webhook(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    x_wc_webhook_topic: Annotated[str | None, Header()] = None,
    x_wc_webhook_signature: Annotated[str | None, Header()] = None,
    x_wc_webhook_source: Annotated[str | None, Header()] = None,
    x_wc_webhook_delivery_id: Annotated[str | None, Header()] = None,
) -> IntakeResult | DeliveryIgnored:
    body = await read_limited_body(request)
    if woocommerce.is_ping(x_wc_webhook_topic, body):
        # WooCommerce refuses to save a webhook unless its unsigned ping gets a 200.
        log.info("woocommerce webhook ping answered")
        return DeliveryIgnored(status="ignored", reason="ping")
    host = woocommerce.source_host(x_wc_webhook_source)
    _verify(
        secrets_for_host(runtime.settings.woocommerce_secrets, host), x_wc_webhook_signature, body
    )
    shop = host or DEFAULT_SHOP
    topic = (x_wc_webhook_topic or "").strip()
    delivery_id = _delivery_id(x_wc_webhook_delivery_id, body=body)
    now = runtime.clock.now()
    try:
        raw, payload = _decode(body)
        event = woocommerce.to_event(
            topic,
            payload,
            event_id=delivery_id,
            received_at=now,
            consent_meta_key=runtime.settings.woocommerce_consent_meta_key,
        )
    except PayloadError as exc:
        return _unmapped(woocommerce.SOURCE, topic, shop, delivery_id, exc)
    if event is None:
        return _ignored(
            woocommerce.SOURCE, topic, shop, delivery_id, known=topic in woocommerce.TOPICS
        )
    return await _ingest(
        session, runtime, source=woocommerce.SOURCE, shop=shop, event=event, raw=raw, now=now
    )


def _verify(secrets: Sequence[str], header: str | None, body: bytes) -> None:
    try:
        signature.verify_body_base64(secrets=secrets, signature_header=header, body=body)
    except signature.SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None


def _decode(body: bytes) -> tuple[str, dict[str, Any]]:
    """The body as text (stored as received) and as a JSON object, money kept as Decimal."""
    try:
        raw = body.decode("utf-8")
        payload = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise PayloadError("body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    return raw, payload


def _delivery_id(*headers: str | None, body: bytes) -> str:
    """The first usable id header; without one (the platforms always send one), a digest of
    the body, so that equal bodies count as repeats."""
    for header in headers:
        value = text(header)
        if value is not None and len(value) <= MAX_DELIVERY_ID:
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def _ingest(
    session: AsyncSession,
    runtime: Runtime,
    *,
    source: str,
    shop: str,
    event: Envelope,
    raw: str,
    now: datetime,
) -> IntakeResult:
    return await service.ingest_event(
        session,
        source=source,
        shop=shop,
        event=event,
        raw_body=raw,
        rules=runtime.rules.current,
        now=now,
        default_time_zone=runtime.settings.default_time_zone,
    )


async def _record_only(
    session: AsyncSession, *, source: str, shop: str, delivery_id: str, topic: str, body: bytes
) -> IntakeResult:
    """Keep the delivery (once) for the task that will act on it, and change nothing else."""
    stored = await repository.record_delivery(
        session,
        source=source,
        shop=shop,
        delivery_id=delivery_id,
        event_type=topic,
        body=body.decode("utf-8", errors="replace"),
    )
    return IntakeResult(status="duplicate" if stored is None else "accepted", event_id=delivery_id)


def _ignored(
    source: str, topic: str, shop: str, delivery_id: str, *, known: bool
) -> DeliveryIgnored:
    if known:
        log.info("%s %s from %s (delivery %s): nothing to do", source, topic, shop, delivery_id)
        return DeliveryIgnored(status="ignored", reason=f"nothing to do for this {topic}")
    log.info("%s topic %r from %s is not handled; answered 200", source, topic, shop)
    return DeliveryIgnored(status="ignored", reason=f"topic {topic!r} is not handled")


def _unmapped(
    source: str, topic: str, shop: str, delivery_id: str, error: PayloadError
) -> DeliveryIgnored:
    # Answered 200: the same body would fail again. Kept as an intake failure in a later task.
    log.error("%s %r from %s (delivery %s) not mapped: %s", source, topic, shop, delivery_id, error)
    return DeliveryIgnored(status="unmapped", reason=str(error))
