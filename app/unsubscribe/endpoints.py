"""`/u/{token}`: the links in marketing mail. GET asks, POST acts (RFC 8058 one-click).

Unsubscribing means marketing only: order mail still goes. The page then offers "undo"
(resubscribe) and "stop all email from this shop"; each change is recorded.

Public, with no login or cookie: mail providers POST to the link themselves, and the signed
token in the path is the credential, which a forged cross-site form cannot know. The page's
other forms (resubscribe, stop all, undo) are also refused when the browser says they came
from another site (Origin, Sec-Fetch-Site). GET never changes anything, because link scanners
and previews follow links; only a POST does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse

from app.api.deps import RuntimeDep, SessionDep
from app.consent import ConsentSource
from app.mail.languages import accepted_languages
from app.mail.unsubscribe import read_token
from app.runtime import Runtime
from app.unsubscribe import service
from app.unsubscribe.pages import Page, page_language, render_page
from app.unsubscribe.service import Action, State, Subscriber

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
_PAGES: dict[State, Page] = {
    State.UNSUBSCRIBED: "unsubscribed",
    State.RESUBSCRIBED: "resubscribed",
    State.STOPPED_ALL: "stopped_all",
}

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not a valid token", "content": {"text/html": {}}},
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
    recipient = read_token(token, secrets=runtime.settings.unsubscribe_secrets)
    if recipient is None:
        return _invalid(request)
    who = await service.subscriber(session, recipient)
    if await service.stopped_all(session, who):
        return _page("stopped_all", who, runtime)
    return _page("confirm", who, runtime)


@router.post(
    "/{token}",
    response_class=HTMLResponse,
    summary="Unsubscribe from marketing (one-click), resubscribe, or stop all email",
    description="A body of `List-Unsubscribe=One-Click` (RFC 8058), an empty body or the "
    "page's `action=unsubscribe` turn marketing mail off; the page's `action=resubscribe`, "
    "`action=stop_all` and `action=undo_stop_all` do what they say.",
    responses={
        **_NOT_FOUND,
        403: {"description": "A page form sent from another site", "content": {"text/html": {}}},
    },
)
async def unsubscribe(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    recipient = read_token(token, secrets=runtime.settings.unsubscribe_secrets)
    if recipient is None:
        return _invalid(request)
    body = (await _start_of_body(request)).strip()
    if body == ONE_CLICK_BODY:
        action, source = Action.UNSUBSCRIBE, ConsentSource.ONE_CLICK
    else:
        action, source = _form_action(body), ConsentSource.PAGE
    who = await service.subscriber(session, recipient)
    # Unsubscribing is always honoured; what could undo it or stop more must come from
    # the page itself.
    if action != Action.UNSUBSCRIBE and _cross_site(request, runtime):
        return _page("forbidden", who, runtime, status_code=status.HTTP_403_FORBIDDEN)
    state = await service.apply(session, who, action, source=source, now=runtime.clock.now())
    return _page(_PAGES[state], who, runtime)


def _form_action(body: bytes) -> Action:
    """The page form's action; anything else (the old `confirm=page`, no body) unsubscribes."""
    values = parse_qs(body.decode("utf-8", "replace")).get("action", [])
    try:
        return Action(values[0]) if values else Action.UNSUBSCRIBE
    except ValueError:
        return Action.UNSUBSCRIBE


def _cross_site(request: Request, runtime: Runtime) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser form, or one old enough to send none
    public = urlsplit(runtime.settings.public_url)
    own = f"{public.scheme}://{public.netloc}".lower()
    return origin.lower().rstrip("/") != own


def _page(
    page: Page, who: Subscriber, runtime: Runtime, *, status_code: int = status.HTTP_200_OK
) -> HTMLResponse:
    if who.email is None and page != "forbidden":
        page = "gone"
    settings = runtime.settings
    html = render_page(
        page,
        language=page_language(who.locale),
        shop=settings.from_address[0] or settings.public_url,
        email=who.email or "",
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


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
