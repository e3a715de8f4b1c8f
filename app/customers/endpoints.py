"""`/api/v1/customers/{id}`: privacy requests by the shop's own customer id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from app.api.deps import API_KEY_RESPONSES, ApiKeyDep, RuntimeDep, SessionDep
from app.customers import service

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
    summary="Erase a customer's personal data and cancel their waiting mail",
    responses={404: {"description": "No customer with this id in this shop"}},
)
async def erase_customer(
    customer_id: str, session: SessionDep, runtime: RuntimeDep, shop: ShopQuery = "default"
) -> dict[str, Any]:
    data = await service.find(session, shop=shop, external_id=customer_id)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such customer")
    cancelled = await service.erase_customer(session, customer_id=data, now=runtime.clock.now())
    return {"erased": True, "messages_cancelled": cancelled}
