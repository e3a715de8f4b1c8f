"""Operator API over the outbox: find messages, cancel or fail one."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, RuntimeDep, SessionDep
from app.models import MessageStatus
from app.outbox import repository
from app.outbox.schemas import MessageOut, MessagePage, message_out, message_page
from app.outbox.service import MessageConflict, MessageNotFound, OperatorAction, end_message

router = APIRouter(
    prefix="/api/v1/messages",
    tags=["messages"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)


@router.get("", response_model=MessagePage, summary="List planned and sent messages")
async def list_messages(
    session: SessionDep,
    email: str | None = None,
    order_id: str | None = None,
    rule: str | None = None,
    status_: Annotated[MessageStatus | None, Query(alias="status")] = None,
    first_day: Annotated[
        date | None,
        Query(
            alias="from",
            description="first UTC day (included) the message was sent on, or if it was "
            "not sent, was or is due on",
        ),
    ] = None,
    last_day: Annotated[
        date | None, Query(alias="to", description="last UTC day (included), as `from`")
    ] = None,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagePage:
    rows = await repository.list_messages(
        session,
        first_day=first_day,
        last_day=last_day,
        email=email,
        order_id=order_id,
        rule=rule,
        status=status_.value if status_ else None,
        before_id=cursor,
        limit=limit,
    )
    return message_page(rows, limit=limit)


_END_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "No such message"},
    409: {"description": "Not in a state the action applies to (e.g. a live sending lease)"},
}


@router.post(
    "/{message_id}/cancel",
    response_model=MessageOut,
    summary="Cancel a message: scheduled, or stuck sending with its lease expired",
    responses=_END_RESPONSES,
)
async def cancel_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep, runtime: RuntimeDep
) -> MessageOut:
    return await _end(session, runtime, message_id, "cancel")


@router.post(
    "/{message_id}/fail",
    response_model=MessageOut,
    summary="Fail a message stuck sending whose lease has expired",
    responses=_END_RESPONSES,
)
async def fail_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep, runtime: RuntimeDep
) -> MessageOut:
    return await _end(session, runtime, message_id, "fail")


async def _end(
    session: SessionDep, runtime: RuntimeDep, message_id: int, action: OperatorAction
) -> MessageOut:
    try:
        found = await end_message(
            session, message_id=message_id, action=action, now=runtime.clock.now()
        )
    except MessageNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message") from exc
    except MessageConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return message_out(*found)
