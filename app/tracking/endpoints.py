"""`/o/{token}` (the open pixel) and `/c/{token}` (the click redirect) in tracked mail.

Public, like the unsubscribe links: the signed token is the only credential. A bad token
(tampered, unknown, expired, or the other kind) gets the same 404 and redirects nowhere,
and the target is only ever the URL stored for the link: no query parameter chooses it.
"""

from __future__ import annotations

import base64

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


@router.api_route("/o/{token}", methods=["GET", "HEAD"], summary="Open pixel (tracked mail)")
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


@router.api_route("/c/{token}", methods=["GET", "HEAD"], summary="Click redirect (tracked mail)")
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
