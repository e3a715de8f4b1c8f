"""Operator API over the suppression list: list, add, remove addresses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import (
    API_KEY_RESPONSES,
    JSON_BODY_RESPONSES,
    MAX_ROW_ID,
    ApiKeyDep,
    RuntimeDep,
    SessionDep,
)
from app.models import Suppression, SuppressionReason
from app.suppressions import repository
from app.suppressions.schemas import SuppressionIn, SuppressionOut, SuppressionPage

router = APIRouter(
    prefix="/api/v1/suppressions",
    tags=["suppressions"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)


def _out(suppression: Suppression) -> SuppressionOut:
    return SuppressionOut(
        id=suppression.id,
        email=suppression.email,
        reason=suppression.reason,
        detail=suppression.detail,
        created_at=suppression.created_at,
    )


@router.get("", response_model=SuppressionPage, summary="List suppressed addresses")
async def list_suppressions(
    session: SessionDep,
    email: str | None = None,
    reason: SuppressionReason | None = None,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SuppressionPage:
    rows = await repository.list_suppressions(
        session,
        email=email,
        reason=reason.value if reason else None,
        before_id=cursor,
        limit=limit,
    )
    items = [_out(row) for row in rows]
    return SuppressionPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.post(
    "",
    response_model=SuppressionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Suppress an address",
    responses={
        200: {"description": "Already suppressed; the existing entry, unchanged"},
        **JSON_BODY_RESPONSES,
    },
)
async def add_suppression(
    body: SuppressionIn, session: SessionDep, runtime: RuntimeDep, response: Response
) -> SuppressionOut:
    suppression, created = await repository.add_suppression(
        session,
        email=str(body.email),
        reason=body.reason.value,
        detail=body.detail,
        now=runtime.clock.now(),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(suppression)


@router.delete(
    "/{email:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Allow mail to an address again",
    responses={404: {"description": "The address is not suppressed"}},
)
async def delete_suppression(email: str, session: SessionDep) -> Response:
    if not await repository.delete_suppression(session, email):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "address is not suppressed")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
