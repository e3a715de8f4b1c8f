"""`PUT /api/v1/products` (bulk upsert of our product JSON) and `GET /api/v1/catalog/unknown`
(SKUs orders name that the catalog lacks). Behind the API key."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from app.api.deps import (
    API_KEY_RESPONSES,
    JSON_BODY_RESPONSES,
    ApiKeyDep,
    RuntimeDep,
    SessionDep,
)
from app.catalog import repository, service
from app.catalog.schemas import ProductsIn, UnknownSku, UnknownSkus, UpsertCounts, shop_name
from app.orders.late import ProductKeys, facts_before, match_late_items

router = APIRouter(tags=["catalog"], dependencies=[ApiKeyDep], responses=API_KEY_RESPONSES)


@router.put(
    "/api/v1/products",
    response_model=UpsertCounts,
    summary="Add or replace products of the catalog (at most 1000 a request)",
    responses={
        422: {"description": "A product is invalid: `loc` names its field"},
        **JSON_BODY_RESPONSES,
    },
)
async def put_products(body: ProductsIn, runtime: RuntimeDep, session: SessionDep) -> UpsertCounts:
    """Each product is stored as a whole (a product sent again replaces what the catalog
    held), found by its `id`, else its `handle`. Sending the same products again changes
    nothing; one sent with an older `updated_at` than the catalog's is left as it is.
    Nothing is stored unless every product is valid. Order items of the last
    CATALOG_LATE_DAYS days that waited for these products are linked to them, and the
    messages of rules that now match are planned."""
    now = runtime.clock.now()
    keys = ProductKeys.of(body.products)
    before = await facts_before(session, shop=body.shop, keys=keys)
    report = await service.upsert_products(
        session,
        shop=body.shop,
        platform=body.platform,
        products=body.products,
        currency=body.currency,
        now=now,
    )
    settings = runtime.settings
    late = await match_late_items(
        session,
        shop=body.shop,
        keys=keys,
        before=before,
        rules=runtime.rules.current,
        now=now,
        late_days=settings.catalog_late_days,
        default_time_zone=settings.default_time_zone,
    )
    return UpsertCounts(
        **asdict(report), items_matched=late.items, messages_planned=late.messages_planned
    )


@router.get(
    "/api/v1/catalog/unknown",
    response_model=UnknownSkus,
    summary="SKUs seen in orders that the catalog does not have, most ordered first",
)
async def unknown_skus(
    session: SessionDep,
    shop: Annotated[
        str | None, Query(max_length=255, description="only this shop's orders")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UnknownSkus:
    if shop is not None:
        shop = _query_shop(shop)
    rows = await repository.unknown_skus(session, shop=shop, limit=limit)
    return UnknownSkus(skus=[UnknownSku(**asdict(row)) for row in rows])


def _query_shop(value: str) -> str:
    try:
        return shop_name(value)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "shop"), "msg": str(exc), "input": value}]
        ) from None
