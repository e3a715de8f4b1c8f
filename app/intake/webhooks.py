"""What every webhook route shares: the size-limited raw body, the signature refusal, the
delivery id, and the answer to an authentic delivery.

Every authentic platform delivery is stored raw first and answered 200, also one we ignore
or cannot read (kept as an intake failure, see `service.py`): the platforms retry anything
else, then disable the webhook, and a retry of the same body would not help. Only signature
and size failures are refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import HTTPException, Request, status
from pydantic import BaseModel

from app.events import IntakeResult
from app.intake import service, signature
from app.intake.payloads import text
from app.intake.platform import Platform
from app.runtime import Runtime

MAX_BODY_BYTES = 1024 * 1024
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

PLATFORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or bad signature (or, for Shopify, shop domain)"},
    413: {"description": "Body over 1 MiB"},
}
JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def read_limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body (the signature covers its exact bytes); refused past `limit`, unbuffered."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def verify_base64(secrets: Sequence[str], header: str | None, body: bytes) -> None:
    """Shopify's and WooCommerce's signature, or 401 saying what is wrong."""
    try:
        signature.verify_body_base64(secrets=secrets, signature_header=header, body=body)
    except signature.SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None


def delivery_id(*headers: str | None, body: bytes) -> str:
    """The first usable id header; without one (the platforms always send one), a digest of
    the body, so that equal bodies count as repeats."""
    for header in headers:
        value = text(header)
        if value is not None and len(value) <= MAX_DELIVERY_ID:
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def take(
    runtime: Runtime,
    *,
    platform: Platform,
    delivery: service.Delivery,
    received_at: datetime,
) -> Answer:
    """Store, map and ingest an authentic platform delivery; its answer (always a 200)."""
    outcome = await service.take_delivery(
        runtime.session_factory,
        platform=platform,
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
