"""`/dashboard/people`: find a customer; their page (orders, messages, consent history,
suppressions, survey answers, coupons), the export as a file, and erasure after a typed
confirmation.

The customer's page shows what the data access export holds (app/customers/service.py):
one source, so the page never shows less than a data request would return, nor more.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.console.access import (
    HEADERS,
    Visit,
    forbidden,
    html,
    posted_form,
    see_other,
    to_login,
    visit,
)
from app.console.render import render
from app.customers import repository, service
from app.models import Customer

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50
HERE = "/dashboard/people"
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _not_found(seen: Visit) -> HTMLResponse:
    body = render(
        "people.html",
        visit=seen,
        here=HERE,
        q="",
        rows=[],
        next_cursor=None,
        error="No customer with this id.",
    )
    return html(body, status.HTTP_404_NOT_FOUND)


@router.get("/people", response_class=HTMLResponse)
async def people_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    q: Annotated[str, Query(max_length=320)] = "",
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    rows = await repository.search_customers(db, text=q, before_id=cursor, limit=PAGE_SIZE)
    next_cursor = rows[-1][0].id if len(rows) == PAGE_SIZE else None
    body = render(
        "people.html", visit=seen, here=HERE, q=q, rows=rows, next_cursor=next_cursor, error=None
    )
    return html(body)


@router.get("/people/{customer_id}", response_class=HTMLResponse)
async def person_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    customer_id: RowId,
    erased: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    customer = await repository.customer_by_row(db, customer_id)
    if customer is None:
        return _not_found(seen)
    document = await service.customer_document(db, customer)
    return html(
        render(
            "person.html",
            visit=seen,
            here=HERE,
            row_id=customer.id,
            doc=document,
            erased=erased,
            confirm_error=None,
        )
    )


@router.get("/people/{customer_id}/export.json")
async def person_export(
    request: Request, runtime: RuntimeDep, db: SessionDep, customer_id: RowId
) -> Response:
    """The data access export of this customer, as a file to hand over."""
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    customer = await repository.customer_by_row(db, customer_id)
    if customer is None:
        return _not_found(seen)
    document = {
        "exported_at": seen.now.isoformat(),
        **await service.customer_document(db, customer),
    }
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers=HEADERS
        | {"Content-Disposition": f'attachment; filename="customer-{customer.id}.json"'},
    )


def _confirmation(customer: Customer) -> str:
    """What the operator types to confirm an erasure: the address, else the shop's id."""
    return customer.email or customer.external_id


@router.post("/people/{customer_id}/erase", response_class=HTMLResponse)
async def erase_person(
    request: Request, runtime: RuntimeDep, db: SessionDep, customer_id: RowId
) -> Response:
    form = await posted_form(request, runtime)
    seen = visit(request, runtime)
    if form is None or seen is None:
        return forbidden()
    customer = await repository.customer_by_row(db, customer_id)
    if customer is None:
        return _not_found(seen)
    if customer.deleted_at is None:
        typed = form.get("confirm", "").strip()
        if typed.lower() != _confirmation(customer).lower():
            document = await service.customer_document(db, customer)
            body = render(
                "person.html",
                visit=seen,
                here=HERE,
                row_id=customer.id,
                doc=document,
                erased=None,
                confirm_error="Type the customer’s address exactly to erase them. "
                "Nothing was erased.",
            )
            return html(body, status.HTTP_422_UNPROCESSABLE_CONTENT)
        cancelled = await service.erase_customer(db, customer_id=customer.id, now=seen.now)
    else:
        cancelled = 0  # erased already: nothing more to do
    return see_other(f"{HERE}/{customer.id}?erased={cancelled}")
