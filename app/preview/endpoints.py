"""`POST /api/v1/preview`: a rule's email for the order in a webhook body; nothing is stored.

The body is an `order.created` webhook body, as `aftersale preview --order` reads, so an
order can be previewed before (or without) it reaching the database.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from app.api.deps import API_KEY_RESPONSES, JSON_BODY_RESPONSES, ApiKeyDep, RuntimeDep
from app.intake.aftersale import DEFAULT_SHOP
from app.mail.templates import TemplateError, TemplateRenderer
from app.orders.schemas import EXAMPLE_BODY, OrderPlaced
from app.preview.service import compose_preview, rule_template

router = APIRouter(
    prefix="/api/v1/preview",
    tags=["preview"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)

# Template HTML is the shop operator's: shown in a browser it may run no script, load
# nothing but images, and keep its inline styles.
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:"
_HEADERS = {
    "Content-Security-Policy": PREVIEW_CSP,
    "X-Content-Type-Options": "nosniff",
    # The preview holds a customer's name, order and unsubscribe link.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class PreviewOut(BaseModel):
    subject: str
    text: str
    html: str
    eml: str


@router.post(
    "",
    response_model=PreviewOut,
    summary="Render a rule's email for the order of an order.created webhook body",
    responses={
        200: {"content": {"text/html": {}}, "description": "JSON, or the HTML with format=html"},
        404: {"description": "No such rule"},
        422: {"description": "Invalid body, or the template does not render"},
        **JSON_BODY_RESPONSES,
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": EXAMPLE_BODY}}}},
)
def preview(
    runtime: RuntimeDep,
    event: OrderPlaced,
    rule: Annotated[str, Query(description="rule id; a rule with variants shows the first")],
    format: Annotated[
        Literal["json", "html"], Query(description="html: only the HTML part, to view")
    ] = "json",
    locale: Annotated[
        str | None,
        Query(
            max_length=35,
            pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
            description="instead of the customer's locale",
        ),
    ] = None,
) -> Response:
    # A plain def: rendering reads template files, so it runs in the thread pool.
    settings = runtime.settings
    found = runtime.rules.current.by_id(rule)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule!r}")
    try:
        email = compose_preview(
            settings=settings,
            renderer=TemplateRenderer(
                settings.templates_dir,
                default_locale=settings.default_locale,
                time_limit=settings.render_timeout,
            ),
            template=rule_template(found),
            event=event,
            shop=DEFAULT_SHOP,  # the body is one of POST /webhooks/orders
            rule=found,
            locale=locale,
            now=runtime.clock.now(),
        )
    except (TemplateError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if format == "html":
        return HTMLResponse(email.html, headers=_HEADERS)
    body = PreviewOut(
        subject=email.subject,
        text=email.text,
        html=email.html,
        eml=email.eml.decode("utf-8", errors="replace"),
    )
    return JSONResponse(body.model_dump(), headers=_HEADERS)
