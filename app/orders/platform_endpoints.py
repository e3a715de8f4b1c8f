"""`POST /webhooks/shopify` and `POST /webhooks/woocommerce`: verify, store raw, map, ingest.

The platform's payload becomes the same event `POST /webhooks/orders` takes, stored and planned
by `service.apply_event` in the request's transaction. Every authentic delivery is stored raw
first and answered 200, also one we ignore or cannot read (kept as an intake failure, see
`app.orders.intake`): the platforms retry anything else, then disable the webhook, and a retry
of the same body would not help. Only signature and size failures are refused.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import RuntimeDep, SessionDep
from app.config import normalize_host, secrets_for_host
from app.customers.service import erase_shop
from app.orders import intake, repository, shopify, signature, woocommerce
from app.orders.endpoints import DEFAULT_SHOP, read_limited_body
from app.orders.platforms import text
from app.orders.schemas import IntakeResult
from app.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

MAX_DELIVERY_ID = 255  # webhook_deliveries.delivery_id


class DeliveryIgnored(BaseModel):
    """An authentic delivery that changed nothing: there is nothing for us in it."""

    status: Literal["ignored"]
    reason: str


class DeliveryUnmapped(BaseModel):
    """An authentic delivery whose payload could not be read: kept as intake failure
    `failure_id` (GET /api/v1/intake/failures), to replay once the mapping is fixed."""

    status: Literal["unmapped"]
    reason: str
    failure_id: int


Answer = IntakeResult | DeliveryIgnored | DeliveryUnmapped

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
    response_model=Answer,
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
) -> Answer:
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
            runtime=runtime,
        )
    now = runtime.clock.now()
    delivery = intake.Delivery(
        source=shopify.SOURCE, shop=shop, delivery_id=delivery_id, topic=topic, body=body
    )
    return await _take(
        session,
        runtime,
        delivery=delivery,
        received_at=shopify.triggered_at(x_shopify_triggered_at, now),
    )


@router.post(
    "/webhooks/woocommerce",
    response_model=Answer,
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
) -> Answer:
    body = await read_limited_body(request)
    if woocommerce.is_ping(x_wc_webhook_topic, body):
        # WooCommerce refuses to save a webhook unless its unsigned ping gets a 200.
        log.info("woocommerce webhook ping answered")
        return DeliveryIgnored(status="ignored", reason="ping")
    host = woocommerce.source_host(x_wc_webhook_source)
    _verify(
        secrets_for_host(runtime.settings.woocommerce_secrets, host), x_wc_webhook_signature, body
    )
    delivery = intake.Delivery(
        source=woocommerce.SOURCE,
        shop=host or DEFAULT_SHOP,
        delivery_id=_delivery_id(x_wc_webhook_delivery_id, body=body),
        topic=(x_wc_webhook_topic or "").strip(),
        body=body,
    )
    return await _take(session, runtime, delivery=delivery, received_at=runtime.clock.now())


def _verify(secrets: Sequence[str], header: str | None, body: bytes) -> None:
    try:
        signature.verify_body_base64(secrets=secrets, signature_header=header, body=body)
    except signature.SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None


def _delivery_id(*headers: str | None, body: bytes) -> str:
    """The first usable id header; without one (the platforms always send one), a digest of
    the body, so that equal bodies count as repeats."""
    for header in headers:
        value = text(header)
        if value is not None and len(value) <= MAX_DELIVERY_ID:
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def _take(
    session: AsyncSession, runtime: Runtime, *, delivery: intake.Delivery, received_at: datetime
) -> Answer:
    outcome = await intake.take_delivery(
        session,
        delivery=delivery,
        received_at=received_at,
        rules=runtime.rules.current,
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    if outcome.result is not None:
        return outcome.result
    if outcome.status == "unmapped":
        assert outcome.failure_id is not None
        return DeliveryUnmapped(
            status="unmapped", reason=outcome.reason, failure_id=outcome.failure_id
        )
    return DeliveryIgnored(status="ignored", reason=outcome.reason)


async def _record_only(
    session: AsyncSession,
    *,
    source: str,
    shop: str,
    delivery_id: str,
    topic: str,
    body: bytes,
    runtime: Runtime,
) -> IntakeResult:
    """Keep the delivery (once); `shop/redact` also erases the shop's data. (A
    `customers/data_request` is answered from GET /api/v1/customers/{id}/export.)"""
    stored = await repository.record_delivery(
        session,
        source=source,
        shop=shop,
        delivery_id=delivery_id,
        event_type=topic,
        body=body.decode("utf-8", errors="replace"),
        received_at=runtime.clock.now(),
    )
    if stored is None:
        return IntakeResult(status="duplicate", event_id=delivery_id)
    result = IntakeResult(status="accepted", event_id=delivery_id)
    if topic == "shop/redact":
        # The shop uninstalled us 48 hours ago: erase every customer and raw body it sent.
        result.messages_cancelled = await erase_shop(session, shop=shop, now=runtime.clock.now())
    return result
