"""`POST /api/v1/preview`: a rule's email for the order in a webhook body; nothing is stored.

The body is an `order.created` webhook body, as `aftersale preview --order` reads, so an
order can be previewed before (or without) it reaching the database.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from app.api.deps import API_KEY_RESPONSES, JSON_BODY_RESPONSES, ApiKeyDep, RuntimeDep
from app.catalog.item_links import catalog_for_items
from app.catalog.recommender import Recommender
from app.config import Settings
from app.events import EXAMPLE_BODY, OrderPlaced
from app.intake.aftersale import DEFAULT_SHOP
from app.mail.templates import TemplateError, TemplateRenderer
from app.preview.service import compose_preview, preview_recommendations, rule_template

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
async def preview(
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
    settings = runtime.settings
    found = runtime.rules.current.by_id(rule)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule!r}")
    now = runtime.clock.now()
    recommendations = None
    async with runtime.session_factory() as session:
        # The items' product pages, pictures and reorder links, as the sent mail has them.
        catalog = (await catalog_for_items(session, [(DEFAULT_SHOP, event.order.items)])).get(
            DEFAULT_SHOP, {}
        )
        if found.recommend is not None:
            recommendations = await preview_recommendations(
                session,
                recommender=preview_recommender(runtime.settings),
                event=event,
                shop=DEFAULT_SHOP,
                rule=found,
                now=now,
            )
    try:
        # Rendering reads template files: in the thread pool.
        email = await run_in_threadpool(
            compose_preview,
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
            now=now,
            recommendations=recommendations,
            catalog=catalog,
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


def preview_recommender(settings: Settings) -> Recommender:
    # Previews are rare: no cache to keep between them, and each shows the catalog as it is.
    return Recommender.from_settings(settings.model_copy(update={"recommend_cache_seconds": 0}))
