"""`/u/{token}`: the links in marketing mail. GET asks, POST unsubscribes (RFC 8058).

Public, with no login, cookie or CSRF token: mail providers POST to the link themselves, and
the signed token is the only credential. GET never changes anything, because link scanners
and previews follow links; only a POST suppresses the address.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import RuntimeDep, SessionDep
from app.mail.languages import accepted_languages
from app.mail.unsubscribe import Recipient, read_token
from app.models import SuppressionReason
from app.runtime import Runtime
from app.suppressions.repository import add_suppression
from app.unsubscribe.pages import Page, page_language, render_page
from app.unsubscribe.repository import customer_locale

router = APIRouter(prefix="/u", tags=["unsubscribe"])

# The body a mail provider's one-click button sends (RFC 8058 section 3.1).
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
_HEADERS = {
    "Cache-Control": "no-store",
    # The token in the URL must not leak to other sites through the Referer header.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not a valid token", "content": {"text/html": {}}}
}


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    summary="Ask to confirm unsubscribing",
    responses=_NOT_FOUND,
)
async def confirm_page(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    recipient = _recipient(token, runtime)
    if recipient is None:
        return _invalid(request)
    return await _page("confirm", recipient, session, runtime)


@router.post(
    "/{token}", response_class=HTMLResponse, summary="Unsubscribe (one-click)", responses=_NOT_FOUND
)
async def unsubscribe(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    recipient = _recipient(token, runtime)
    if recipient is None:
        return _invalid(request)
    body = await _start_of_body(request)
    await add_suppression(
        session,
        email=recipient.email,
        reason=SuppressionReason.UNSUBSCRIBE,
        detail="one-click" if body.strip() == ONE_CLICK_BODY else "unsubscribe page",
        now=runtime.clock.now(),
    )
    return await _page("done", recipient, session, runtime)


def _recipient(token: str, runtime: Runtime) -> Recipient | None:
    return read_token(token, secrets=runtime.settings.unsubscribe_secrets)


async def _page(
    page: Page, recipient: Recipient, session: AsyncSession, runtime: Runtime
) -> HTMLResponse:
    locale = await customer_locale(session, shop=recipient.shop, email=recipient.email)
    settings = runtime.settings
    html = render_page(
        page,
        language=page_language(locale),
        shop=settings.from_address[0] or settings.public_url,
        email=recipient.email,
    )
    return HTMLResponse(html, headers=_HEADERS)


def _invalid(request: Request) -> HTMLResponse:
    # One answer for every bad token (tampered, foreign key, garbled): nothing to learn from.
    # No customer to ask, so the browser's languages, in its order of preference.
    language = page_language(*accepted_languages(request.headers.get("accept-language", "")))
    return HTMLResponse(
        render_page("invalid", language=language),
        status_code=status.HTTP_404_NOT_FOUND,
        headers=_HEADERS,
    )


async def _start_of_body(request: Request, limit: int = 1024) -> bytes:
    """Enough of the body to recognise the one-click form; the rest is never read."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]
