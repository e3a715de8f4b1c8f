"""Operator API over the suppression list: list, add, remove addresses (one, or in bulk),
and the record of removals."""

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
from app.models import SuppressionReason, SuppressionRemoval
from app.suppressions import repository, service
from app.suppressions.schemas import (
    BulkRemovalIn,
    RemovalOut,
    RemovalPage,
    RemovalReportOut,
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
    suppression_out,
    suppression_page,
)

router = APIRouter(
    prefix="/api/v1/suppressions",
    tags=["suppressions"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
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
    return suppression_page(rows, limit=limit)


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
    return suppression_out(suppression)


@router.post(
    "/remove",
    response_model=RemovalReportOut,
    summary="Remove suppressions in bulk (by reason and creation time)",
    description="Takes off every entry with `reason` made in [`since`, `until`), e.g. the "
    "hard bounces a wrong SMTP setup caused. Each removal is recorded (GET .../removals). "
    "With `dry_run` nothing changes and the counts say what would be removed.",
    responses=JSON_BODY_RESPONSES,
)
async def remove_suppressions(
    body: BulkRemovalIn, session: SessionDep, runtime: RuntimeDep
) -> RemovalReportOut:
    report = await service.remove_matching(
        session,
        reason=body.reason.value if body.reason else None,
        since=body.since,
        until=body.until,
        source=service.RemovalSource.API,
        note=body.note,
        now=runtime.clock.now(),
        dry_run=body.dry_run,
    )
    return RemovalReportOut(
        dry_run=report.dry_run, removed=report.removed, by_reason=report.by_reason
    )


@router.get("/removals", response_model=RemovalPage, summary="List removed suppressions")
async def list_removals(
    session: SessionDep,
    email: str | None = None,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RemovalPage:
    rows = await repository.list_removals(session, email=email, before_id=cursor, limit=limit)
    items = [_removal_out(row) for row in rows]
    return RemovalPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


def _removal_out(row: SuppressionRemoval) -> RemovalOut:
    return RemovalOut(
        id=row.id,
        email=row.email,
        reason=row.reason,
        detail=row.detail,
        suppressed_at=row.suppressed_at,
        removed_at=row.removed_at,
        source=row.source,
        note=row.note,
    )


@router.delete(
    "/{email:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Allow mail to an address again",
    description="The removal is recorded (GET .../removals) with the optional `note`.",
    responses={404: {"description": "The address is not suppressed"}},
)
async def delete_suppression(
    email: str,
    session: SessionDep,
    runtime: RuntimeDep,
    note: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    removed = await service.remove_address(
        session,
        email=email,
        source=service.RemovalSource.API,
        note=note,
        now=runtime.clock.now(),
    )
    if removed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "address is not suppressed")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
