"""Our own signed JSON: `POST /webhooks/orders`, its `v1=` signature and secret, and its
body, which is already our event (validated, not mapped).

The route verifies, stores raw, validates and plans in one transaction, then answers
(queued intake: verifies, validates and stores; a worker plans).

An authentic body that fails validation is answered 422, as documented (the sender must fix
it), and also kept as an intake failure: nothing authentic is lost, and a corrected copy sent
under the same event id goes through and resolves it (README, "Intake failures").
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status

from app.api.deps import RuntimeDep
from app.api.errors import validation_error_response
from app.config import Settings
from app.events import EXAMPLE_BODY, Envelope, IntakeResult, parse_body
from app.intake import service, signature
from app.intake.platform import Platform
from app.intake.webhooks import read_limited_body

SOURCE = "aftersale"
PATH = "/webhooks/orders"
# Everything our own JSON sends is stored under this shop.
DEFAULT_SHOP = "default"

router = APIRouter(tags=["webhooks"])


def _secrets(settings: Settings) -> list[str]:
    return [settings.webhook_secret]


def _read(body: bytes | str, claimed_type: str) -> list[Envelope]:
    # The topic of our own JSON is the `type` its body claimed (`_claimed`).
    return [parse_body(body, claimed_type=claimed_type)]


def _under_body(errors: Any) -> list[Any]:
    return [{**error, "loc": ("body", *error["loc"])} for error in errors]


def _claimed(body: bytes) -> tuple[str, str]:
    """The event id and type the body claims, read leniently, so that an invalid body is
    kept under the id a corrected copy will have. No usable id: a digest of the body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        data = None
    data = data if isinstance(data, dict) else {}
    event_id, event_type = _storable(data.get("id")), _storable(data.get("type"))
    if event_id is not None and 0 < len(event_id.strip()) <= 255:
        claimed_id = event_id.strip()
    else:
        claimed_id = "sha256:" + hashlib.sha256(body).hexdigest()
    return claimed_id, event_type or ""


def _storable(value: Any) -> str | None:
    # PostgreSQL text cannot hold NUL, and no real id or type has one.
    return value if isinstance(value, str) and "\x00" not in value else None


@router.post(
    PATH,
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
    x_aftersale_timestamp: Annotated[str | None, Header()] = None,
    x_aftersale_signature: Annotated[str | None, Header()] = None,
) -> Any:
    body = await read_limited_body(request)
    try:
        signature.verify(
            secret=_secrets(runtime.settings)[0],
            timestamp_header=x_aftersale_timestamp,
            signature_header=x_aftersale_signature,
            body=body,
            now=time.time(),
        )
    except signature.SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    event_id, event_type = _claimed(body)
    # Its own transactions (none for a queued delivery), committed before the answer.
    outcome = await service.take_delivery(
        runtime.session_factory,
        platform=PLATFORM,
        delivery=service.Delivery(
            source=SOURCE, shop=DEFAULT_SHOP, delivery_id=event_id, topic=event_type, body=body
        ),
        received_at=runtime.clock.now(),
        rules=runtime.rules.current,
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    if outcome.result is not None:
        return outcome.result
    # Answered, not raised: the request's transaction must commit the kept failure.
    errors = outcome.error.errors if isinstance(outcome.error, service.InvalidEvent) else []
    return validation_error_response(_under_body(errors))


PLATFORM = Platform(
    source=SOURCE,
    path=PATH,
    router=router,
    secret_settings=("AFTERSALE_WEBHOOK_SECRET",),
    secrets=_secrets,
    body_mapper=_read,
)
