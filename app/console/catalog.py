"""`/dashboard/catalog`: the products mail can link to, and the SKUs orders name that the
catalog lacks (their items match no category rule by product and get no product link)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.catalog import repository
from app.console.access import html, to_login, visit
from app.console.render import render

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50
UNKNOWN_SHOWN = 100


@router.get("/catalog", response_class=HTMLResponse)
async def catalog_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    q: Annotated[str, Query(max_length=255)] = "",
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    products = await repository.list_products(db, text=q, before_id=cursor, limit=PAGE_SIZE)
    unknown = await repository.unknown_skus(db, shop=None, limit=UNKNOWN_SHOWN)
    body = render(
        "catalog.html",
        visit=seen,
        here="/dashboard/catalog",
        q=q,
        products=products,
        next_cursor=products[-1][0].id if len(products) == PAGE_SIZE else None,
        unknown=unknown,
        unknown_shown=UNKNOWN_SHOWN,
    )
    return html(body)
