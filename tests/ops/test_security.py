"""API keys on every /api/ route, the public links' rate limit, security headers on HTML."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import ASGITransport, AsyncClient

from app.events import EXAMPLE_BODY
from app.mail.unsubscribe import make_token
from app.ops.ratelimit import ClientRateLimiter
from app.ops.security import HTML_CSP, SecurityHeadersMiddleware
from app.preview.endpoints import PREVIEW_CSP
from app.runtime import Runtime
from tests.conftest import Api
from tests.ops.conftest import PUBLIC_BURST, REVOKED_API_KEY, Visitor

_PATH_PARAM = re.compile(r"\{[^}]+\}")


async def test_every_api_route_needs_a_key_and_refuses_a_revoked_one(
    app: FastAPI, client: AsyncClient
) -> None:
    # Walks the routes the app has, so a router added later without the key fails here.
    routes = [
        (method, route.path)
        for route in iter_route_contexts(app.routes)  # included routers, with their prefixes
        if isinstance(route.original_route, APIRoute)
        and route.path is not None
        and route.path.startswith("/api/")
        for method in sorted(route.methods or ())
    ]
    assert len(routes) >= 10, routes
    revoked = {"Authorization": f"Bearer {REVOKED_API_KEY}"}
    for method, path in routes:
        url = _PATH_PARAM.sub("1", path)
        without = await client.request(method, url)
        assert without.status_code == 401, (method, path, without.text)
        assert without.headers["www-authenticate"] == "Bearer"
        refused = await client.request(method, url, headers=revoked)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json() == {"detail": "API key revoked"}


async def test_a_valid_key_still_works(client: AsyncClient, api: Api) -> None:
    assert (await client.get("/api/v1/messages", headers=api.headers)).status_code == 200
    wrong = await client.get("/api/v1/messages", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_limiter_lets_a_burst_through_then_paces() -> None:
    now = [1000.0]
    limiter = ClientRateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [await limiter.take("198.51.100.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.take("198.51.100.1") == 1.0  # one a second at 60 a minute
    assert await limiter.take("198.51.100.2") == 0.0  # each client has its own bucket
    now[0] += 0.25
    assert await limiter.take("198.51.100.1") == 0.75
    now[0] += 0.75
    assert await limiter.take("198.51.100.1") == 0.0
    assert await limiter.take("198.51.100.1") == 1.0  # a refused request takes no turn
    now[0] += 60
    assert [await limiter.take("198.51.100.1") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


async def test_limiter_forgets_idle_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.ops.ratelimit._MAX_IDLE_CLIENTS", 2)
    now = [0.0]
    limiter = ClientRateLimiter(per_minute=60, burst=1, clock=lambda: now[0])
    await limiter.take("a")
    await limiter.take("b")
    now[0] += 5  # both full again: nothing to remember
    await limiter.take("c")
    assert set(limiter._clients) == {"c"}


async def test_public_links_answer_429_with_retry_after(visitor: Visitor) -> None:
    busy, other = visitor("203.0.113.7"), visitor("203.0.113.8")
    for _ in range(PUBLIC_BURST):
        assert (await busy.get("/u/not-a-token")).status_code == 404
    limited = await busy.get("/c/not-a-token")  # one bucket for all public links
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert (await busy.get("/o/not-a-token")).status_code == 429
    assert (await other.get("/u/not-a-token")).status_code == 404
    # The API and health checks are not paced.
    assert (await busy.get("/healthz")).status_code == 200


async def test_html_pages_get_security_headers_and_keep_their_own(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    token = make_token(customer_id=1, secrets=runtime.settings.unsubscribe_secrets)
    page = await client.get(f"/u/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # The unsubscribe page's own policy (it posts a form) stays as it was.
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert len(page.headers.get_list("content-security-policy")) == 1

    preview = await client.post(
        "/api/v1/preview",
        params={"rule": "thank-you", "format": "html"},
        json=EXAMPLE_BODY,
        headers=api.headers,
    )
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-security-policy"] == PREVIEW_CSP
    assert preview.headers["x-frame-options"] == "DENY"

    docs = await client.get("/docs")
    assert "script-src" in docs.headers["content-security-policy"]
    assert "x-frame-options" not in (await client.get("/healthz")).headers


async def test_headers_go_on_html_only_and_never_twice() -> None:
    app = FastAPI()
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/page")
    def page() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    @app.get("/scripted")
    def scripted() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>", headers={"Content-Security-Policy": "script-src 'self'"})

    @app.get("/data")
    def data() -> JSONResponse:
        return JSONResponse({"html": "<p>"})

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        plain = await http.get("/page")
        assert plain.headers["content-security-policy"] == HTML_CSP
        assert "script-src" not in HTML_CSP  # no scripts unless a page opts in
        assert plain.headers["x-frame-options"] == "DENY"
        opted_in = await http.get("/scripted")
        assert opted_in.headers.get_list("content-security-policy") == ["script-src 'self'"]
        assert opted_in.headers["x-content-type-options"] == "nosniff"
        json_answer = await http.get("/data")
        assert "content-security-policy" not in json_answer.headers
        assert "x-frame-options" not in json_answer.headers


def test_revoked_keys_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import Settings

    monkeypatch.setenv("AFTERSALE_REVOKED_API_KEYS", " old-key-1 , old-key-2,")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.revoked_api_keys == ["old-key-1", "old-key-2"]
