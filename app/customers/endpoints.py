"""`/api/v1/customers`: privacy requests by the shop's own customer id or by address;
`/api/v1/privacy/requests`: the data requests platforms sent, with their exports."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import EmailStr

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, RuntimeDep, SessionDep
from app.customers import repository, service
from app.customers.schemas import ErasureOut, PrivacyRequestOut, PrivacyRequestPage
from app.models import PrivacyRequest

router = APIRouter(
    prefix="/api/v1/customers",
    tags=["customers"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)

ShopQuery = Annotated[
    str, Query(max_length=255, description="the shop the id belongs to (Shopify: its domain)")
]


@router.get(
    "/export",
    summary="Everything held about the person at an address, as JSON (a data access request)",
    responses={404: {"description": "Nothing held about this address (in this shop)"}},
)
async def export_address(
    email: Annotated[EmailStr, Query(max_length=320, description="the person's address")],
    session: SessionDep,
    runtime: RuntimeDep,
    shop: Annotated[
        str | None, Query(max_length=255, description="only this shop (default: every shop)")
    ] = None,
) -> dict[str, Any]:
    data = await service.export_address(
        session, email=email.lower(), shop=shop, now=runtime.clock.now()
    )
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "nothing held about this address")
    return data


@router.get(
    "/{customer_id}/export",
    summary="Everything held about a customer, as JSON (a data access request)",
    responses={404: {"description": "No customer with this id in this shop"}},
)
async def export_customer(
    customer_id: str, session: SessionDep, runtime: RuntimeDep, shop: ShopQuery = "default"
) -> dict[str, Any]:
    data = await service.export_customer(
        session, shop=shop, external_id=customer_id, now=runtime.clock.now()
    )
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such customer")
    return data


@router.delete(
    "/{customer_id}",
    response_model=ErasureOut,
    summary="Erase a customer's personal data and cancel their waiting mail",
    responses={
        404: {"description": "No customer with this id in this shop"},
        409: {
            "description": "No such customer yet, and a queued webhook may be about them "
            "(AFTERSALE_INTAKE_MODE=queued): retry after Retry-After seconds"
        },
    },
)
async def erase_customer(
    customer_id: str, session: SessionDep, runtime: RuntimeDep, shop: ShopQuery = "default"
) -> ErasureOut:
    data = await service.find(session, shop=shop, external_id=customer_id)
    if data is None and await service.queued_for(session, shop=shop, external_id=customer_id):
        retry = max(1, math.ceil(runtime.settings.dispatch_interval))
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "a webhook about this customer is still queued; erase again once it is applied",
            headers={"Retry-After": str(retry)},
        )
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such customer")
    cancelled = await service.erase_customer(session, customer_id=data, now=runtime.clock.now())
    return ErasureOut(erased=True, messages_cancelled=cancelled)


privacy_router = APIRouter(
    prefix="/api/v1/privacy",
    tags=["customers"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)


def _request_out(request: PrivacyRequest) -> PrivacyRequestOut:
    return PrivacyRequestOut(
        id=request.id,
        shop=request.shop,
        platform=request.platform,
        kind=request.kind,
        customer_ref=request.customer_ref,
        requested_at=request.requested_at,
        delivered_at=request.delivered_at,
        export=request.export,
    )


@privacy_router.get(
    "/requests",
    response_model=PrivacyRequestPage,
    summary="Data requests from the platforms (Shopify customers/data_request), newest first",
)
async def list_privacy_requests(
    session: SessionDep,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PrivacyRequestPage:
    rows = await repository.list_privacy_requests(session, before_id=cursor, limit=limit)
    items = [_request_out(row) for row in rows]
    return PrivacyRequestPage(
        items=items, next_cursor=items[-1].id if len(items) == limit else None
    )


@privacy_router.get(
    "/requests/{request_id}",
    response_model=PrivacyRequestOut,
    summary="One data request, with its export",
    responses={404: {"description": "No such request"}},
)
async def get_privacy_request(
    request_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep
) -> PrivacyRequestOut:
    request = await repository.get_privacy_request(session, request_id)
    if request is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such request")
    return _request_out(request)
