"""Who may see a console page, and the answer every page gives.

The sign-in is the dashboard's (app/dashboard/session.py): a signed cookie for an API key
still in API_KEYS. Every console page lives under /dashboard, the cookie's path. Pages run
no script at all (`script-src 'none'`), are kept by no cache and shown in no search engine.
A form posted to the console must carry the CSRF token of the page it came from
(app/console/csrf.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from app.api.deps import api_key_status
from app.console import csrf
from app.console.render import render
from app.dashboard import session
from app.runtime import Runtime

CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    # Figures of the business and people's addresses: kept by no cache, shown in no search engine.
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}
LOGIN_PATH = "/dashboard/login"
# A console form is a token and a few short fields: anything longer is not one.
MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Visit:
    """A signed-in visit: what every page needs beyond its own data."""

    csrf: str
    now: datetime


def html(body: str, status_code: int = status.HTTP_200_OK, **headers: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=HEADERS | headers)


def to_login() -> RedirectResponse:
    return RedirectResponse(LOGIN_PATH, status_code=status.HTTP_303_SEE_OTHER)


def see_other(path: str) -> RedirectResponse:
    """After a post, back to a page (a reload then repeats no action)."""
    return RedirectResponse(path, status_code=status.HTTP_303_SEE_OTHER)


def signed_in(request: Request, runtime: Runtime) -> bool:
    """A valid, unexpired cookie for a key still in API_KEYS and not revoked."""
    return visit(request, runtime) is not None


def visit(request: Request, runtime: Runtime) -> Visit | None:
    """The visit of a signed-in browser; None when it must sign in (again)."""
    settings = runtime.settings
    cookie = request.cookies.get(session.COOKIE_NAME)
    now = runtime.clock.now()
    digest = session.read(cookie, secret=settings.session_secret, now=now)
    if cookie is None or digest is None:
        return None
    key = session.key_of(digest, keys=settings.api_keys, secret=settings.session_secret)
    if key is None or api_key_status(key, settings) != "valid":
        return None
    return Visit(csrf=csrf.token(cookie, secret=settings.session_secret), now=now)


async def read_form(request: Request, *, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """The url-encoded form's fields (the first of each name); None when it is longer than
    `limit` bytes (read no further)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


async def posted_form(request: Request, runtime: Runtime) -> dict[str, str] | None:
    """A signed-in visit's form with a CSRF token of this session; None otherwise.

    The caller answers None with `forbidden()`: a stale page, another site's form or no
    sign-in at all (then the page it leads to asks for one).
    """
    if visit(request, runtime) is None:
        return None
    form = await read_form(request)
    cookie = request.cookies.get(session.COOKIE_NAME, "")
    secret = runtime.settings.session_secret
    if form is None or not csrf.valid(form.get(csrf.FIELD), cookie=cookie, secret=secret):
        return None
    return form


def forbidden() -> HTMLResponse:
    return html(render("refused.html", visit=None, here=""), status.HTTP_403_FORBIDDEN)
