"""`POST /webhooks/orders`: verify, validate, store and plan in one transaction, then answer."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import RuntimeDep, SessionDep
from app.orders import service, signature
from app.orders.schemas import BODY_MODELS, EXAMPLE_BODY, Envelope, IntakeResult

MAX_BODY_BYTES = 1024 * 1024
SOURCE = "aftersale"
DEFAULT_SHOP = "default"

router = APIRouter(tags=["webhooks"])


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


def parse_event(body: bytes) -> Envelope:
    """Validate the envelope, then the body for its type, with errors located under `body`."""
    try:
        envelope = Envelope.model_validate_json(body)
        return BODY_MODELS[envelope.type].model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            error["loc"] = ("body", *error["loc"])
        raise RequestValidationError(errors) from None


@router.post(
    "/webhooks/orders",
    response_model=IntakeResult,
    summary="Receive an order or customer event (our signed JSON)",
    responses={
        401: {"description": "Bad signature or stale timestamp"},
        413: {"description": "Body over 1 MiB"},
        422: {"description": "Invalid body; each error names its field"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "An event envelope (id, type, occurred_at) with an "
                        "`order` and/or `customer` as its type needs; see the README.",
                    },
                    "example": EXAMPLE_BODY,
                }
            },
        }
    },
)
async def receive_order_event(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    x_aftersale_timestamp: Annotated[str | None, Header()] = None,
    x_aftersale_signature: Annotated[str | None, Header()] = None,
) -> Any:
    body = await read_limited_body(request)
    try:
        signature.verify(
            secret=runtime.settings.webhook_secret,
            timestamp_header=x_aftersale_timestamp,
            signature_header=x_aftersale_signature,
            body=body,
            now=time.time(),
        )
    except signature.SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    event = parse_event(body)
    return await service.ingest_event(
        session,
        source=SOURCE,
        shop=DEFAULT_SHOP,
        event=event,
        raw_body=body.decode("utf-8"),
        rules=runtime.rules.current,
        now=runtime.clock.now(),
        default_time_zone=runtime.settings.default_time_zone,
    )
