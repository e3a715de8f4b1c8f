"""`GET /api/v1/coupons`: how many codes each pool has left, handed out and redeemed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import API_KEY_RESPONSES, ApiKeyDep, RuntimeDep, SessionDep
from app.coupons import service
from app.coupons.schemas import CouponsStatus, PoolStatus

router = APIRouter(
    prefix="/api/v1/coupons",
    tags=["coupons"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)


@router.get(
    "",
    response_model=CouponsStatus,
    summary="Codes per coupon pool: total, free, assigned, redeemed, expired",
)
async def coupons_status(
    runtime: RuntimeDep,
    session: SessionDep,
    pool: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="only this pool"),
    ] = None,
) -> CouponsStatus:
    counts = await service.pool_status(session, now=runtime.clock.now(), pool=pool)
    return CouponsStatus(pools=[PoolStatus(**asdict(row)) for row in counts])
