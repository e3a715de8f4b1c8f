"""`/o/{token}` (the open pixel) and `/c/{token}` (the click redirect) in tracked mail.

Public, like the unsubscribe links: the signed token is the only credential. A bad token
(tampered, unknown, expired, or the other kind) gets the same 404 and redirects nowhere,
and the target is only ever the URL stored for the link: no query parameter chooses it.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import RedirectResponse

from app.api.deps import RuntimeDep, SessionDep
from app.tracking.service import Visit, record_click, record_open

router = APIRouter(tags=["tracking"])

# The smallest transparent GIF: 1×1, one colour.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_HEADERS = {
    # Every fetch must reach us to be counted, and nothing here is for a cache to keep.
    "Cache-Control": "no-store, max-age=0",
    "Pragma": "no-cache",
    # The token in the URL must not leak to the target site through the Referer header.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}


def _visit(request: Request) -> Visit:
    return Visit(
        method=request.method,
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else None,
    )


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not a valid token (tampered, unknown, expired or the other kind)"}
}
_CLICK_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "To the link's stored URL"},
    204: {"description": "A link no person can see: counted, leads nowhere"},
    **_NOT_FOUND,
}


# GET and HEAD are registered apart so that each has its own OpenAPI operation id.
@router.get("/o/{token}", summary="Open pixel (tracked mail)", responses=_NOT_FOUND)
@router.head(
    "/o/{token}",
    summary="Open pixel (tracked mail)",
    responses=_NOT_FOUND,
    operation_id="open_pixel_head",
)
async def open_pixel(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> Response:
    recorded = await record_open(
        session,
        token=token,
        visit=_visit(request),
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    # The image either way, so an expired pixel never shows as a broken image.
    return Response(
        PIXEL_GIF,
        status_code=status.HTTP_200_OK if recorded else status.HTTP_404_NOT_FOUND,
        media_type="image/gif",
        headers=_HEADERS,
    )


@router.get("/c/{token}", summary="Click redirect (tracked mail)", responses=_CLICK_RESPONSES)
@router.head(
    "/c/{token}",
    summary="Click redirect (tracked mail)",
    responses=_CLICK_RESPONSES,
    operation_id="click_head",
)
async def click(token: str, request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    target = await record_click(
        session,
        token=token,
        visit=_visit(request),
        settings=runtime.settings,
        now=runtime.clock.now(),
    )
    if target is None:
        return Response(
            "Not found\n",
            status_code=status.HTTP_404_NOT_FOUND,
            media_type="text/plain",
            headers=_HEADERS,
        )
    if target.url is None:  # the honeypot: counted, and it leads nowhere
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_HEADERS)
    return RedirectResponse(target.url, status_code=status.HTTP_302_FOUND, headers=_HEADERS)
