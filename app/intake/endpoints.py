"""Operator API over intake failures: authentic deliveries that could not be mapped."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, SessionDep
from app.intake import repository
from app.intake.schemas import IntakeFailureOut, IntakeFailurePage
from app.models import IntakeFailure, WebhookDelivery

router = APIRouter(
    prefix="/api/v1/intake",
    tags=["intake"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)


def _out(failure: IntakeFailure, delivery: WebhookDelivery) -> IntakeFailureOut:
    return IntakeFailureOut(
        id=failure.id,
        source=delivery.source,
        shop=delivery.shop,
        topic=delivery.event_type,
        delivery_id=delivery.delivery_id,
        received_at=delivery.received_at,
        error=failure.error,
        attempts=failure.attempts,
        replayed_at=failure.replayed_at,
        replay_result=failure.replay_result,
    )


@router.get(
    "/failures",
    response_model=IntakeFailurePage,
    summary="List deliveries that could not be mapped (replay: `aftersale intake replay ID`)",
)
async def list_intake_failures(
    session: SessionDep,
    state: Annotated[
        Literal["open", "replayed"] | None,
        Query(description="open: not replayed yet; replayed: went through since"),
    ] = None,
    source: Annotated[
        Literal["shopify", "woocommerce", "aftersale"] | None,
        Query(description="aftersale: our own JSON, POST /webhooks/orders"),
    ] = None,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IntakeFailurePage:
    rows = await repository.list_failures(
        session,
        resolved=None if state is None else state == "replayed",
        source=source,
        before_id=cursor,
        limit=limit,
    )
    items = [_out(*row) for row in rows]
    return IntakeFailurePage(items=items, next_cursor=items[-1].id if len(items) == limit else None)
