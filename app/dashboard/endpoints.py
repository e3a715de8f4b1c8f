"""`/dashboard`: sign in with an API key, then the stats as tables and charts.

A login form rather than the bearer header, so a browser can open it: the key is posted
once and a signed cookie (app/dashboard/session.py) stands for it afterwards. The key is
never in a URL, so never in a log or a browser history. Cross-site requests cannot use the
cookie (SameSite=Strict), and the pages run no script at all (`script-src 'none'`).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import RuntimeDep, SessionDep, api_key_status
from app.console.access import (
    forbidden,
    html,
    posted_form,
    read_form,
    signed_in,
    to_login,
    visit,
)
from app.dashboard import pages, session
from app.dashboard.service import dashboard, figures_lag
from app.ops.ratelimit import ClientRateLimiter
from app.stats.endpoints import DEFAULT_DAYS, MAX_BUCKETS
from app.stats.schemas import Bucket
from app.stats.service import Span, buckets

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

# Login attempts per client IP (per process): enough for typos, too few to guess a key.
LOGIN_PER_MINUTE = 10
LOGIN_BURST = 5
# A login form is an API key and a few bytes: anything longer is not one.
_MAX_FORM_BYTES = 4096


@router.get("", response_class=HTMLResponse)
async def dashboard_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    bucket: Bucket = "day",
    rule: str | None = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    last = last or runtime.clock.now().date()
    first = first or max(date.min, last - timedelta(days=DEFAULT_DAYS - 1))
    rule = rule or None  # the form's "all rules" is an empty value
    loaded = [loaded_rule.id for loaded_rule in runtime.rules.current.rules]
    error, status_code = None, status.HTTP_200_OK
    if first > last:
        error, status_code = "“From” is after “to”.", status.HTTP_422_UNPROCESSABLE_CONTENT
    elif len(buckets(Span(first, last), bucket)) > MAX_BUCKETS:
        error = f"More than {MAX_BUCKETS} {bucket}s: choose a shorter span or weeks."
        status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    data = None
    if error is None:
        data = await dashboard(
            db,
            span=Span(first, last),
            bucket=bucket,
            rule=rule,
            loaded_rules=loaded,
            rule_set=runtime.rules.current,
        )
        if data is None:
            error, status_code = f"No rule named “{rule}”.", status.HTTP_404_NOT_FOUND
    body = pages.dashboard_page(
        visit=seen,
        first=first,
        last=last,
        bucket=bucket,
        rule=rule,
        rules=data.rules if data else sorted(loaded),
        data=data,
        today=runtime.clock.now().date(),
        lag=figures_lag(runtime.settings),
        error=error,
    )
    return html(body, status_code)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, runtime: RuntimeDep) -> Response:
    if signed_in(request, runtime):
        return RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
    return html(pages.login_page())


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, runtime: RuntimeDep) -> Response:
    wait = await _login_limiter(request).take(request.client.host if request.client else "-")
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        return html(
            pages.login_page(message=f"Too many attempts. Try again in {seconds} seconds."),
            status.HTTP_429_TOO_MANY_REQUESTS,
            **{"Retry-After": str(seconds)},
        )
    form = await read_form(request, limit=_MAX_FORM_BYTES)
    if form is None:
        return html(
            pages.login_page(message="That was not a login form."),
            status.HTTP_413_CONTENT_TOO_LARGE,
        )
    key = form.get("api_key", "")
    settings = runtime.settings
    found = api_key_status(key, settings) if key else "invalid"
    if found == "revoked":
        return html(
            pages.login_page(message="This API key has been revoked."), status.HTTP_403_FORBIDDEN
        )
    if found == "invalid":
        return html(
            pages.login_page(message="That is not a valid API key."), status.HTTP_401_UNAUTHORIZED
        )
    response = RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        session.COOKIE_NAME,
        session.issue(key, secret=settings.session_secret, now=runtime.clock.now()),
        max_age=int(session.LIFETIME.total_seconds()),
        path=session.COOKIE_PATH,
        secure=settings.public_url.lower().startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request, runtime: RuntimeDep) -> Response:
    if await posted_form(request, runtime) is None:
        return forbidden()
    response = to_login()
    response.delete_cookie(
        session.COOKIE_NAME,
        path=session.COOKIE_PATH,
        secure=runtime.settings.public_url.lower().startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return response


def _login_limiter(request: Request) -> ClientRateLimiter:
    """The app's login limiter, made on first use (every app its own, like its other state)."""
    limiter: ClientRateLimiter | None = getattr(request.app.state, "dashboard_login_limiter", None)
    if limiter is None:
        limiter = ClientRateLimiter(per_minute=LOGIN_PER_MINUTE, burst=LOGIN_BURST)
        request.app.state.dashboard_login_limiter = limiter
    return limiter
