"""`/` leads to the dashboard; `/docs` is served whole by the app (offline, no CDN) and is
off in production unless API_DOCS enables it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.home.endpoints import DOCS_CSP
from app.main import create_app
from app.runtime import Runtime


@asynccontextmanager
async def client_for(runtime: Runtime, settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, runtime=runtime)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_home_redirects_to_the_dashboard(client: AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code == 302
    assert answer.headers["location"] == "/dashboard"
    assert (await client.get("/", follow_redirects=True)).url.path.startswith("/dashboard")


async def test_docs_load_nothing_from_elsewhere_and_every_part_is_served(
    client: AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"] == DOCS_CSP
    # Scripts and styles of this origin only: no CDN, no inline script.
    assert "https:" not in DOCS_CSP and "unsafe-eval" not in DOCS_CSP
    assert "script-src 'self';" in DOCS_CSP
    assert "http://" not in page.text and "https://" not in page.text and "//" not in page.text
    assert re.findall(r"<script>", page.text) == []
    parts = re.findall(r'(?:src|href|data-openapi-url)="([^"]+)"', page.text)
    assert len(parts) == 5, parts
    for url in parts:
        assert url.startswith("/"), url
        answer = await client.get(url)
        assert answer.status_code == 200, url
    init = await client.get("/docs/init.js")
    assert init.headers["content-type"].startswith("text/javascript")
    # Swagger UI's validator badge would fetch an image from validator.swagger.io.
    assert "validatorUrl: null" in init.text and "http" not in init.text
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    # Only the files the page loads; nothing else of the package, nor anything else.
    assert (await client.get("/docs/assets/index.html")).status_code == 404
    assert (await client.get("/docs/assets/..%2f__init__.py")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404
    # The schema the page shows, and the other pages keep their strict policy.
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "aftersale"
    for other in ("/dashboard/login", "/u/not-a-token"):
        policy = (await client.get(other)).headers["content-security-policy"]
        assert "script-src 'self'" not in policy and "default-src 'none'" in policy, other


async def test_production_has_no_docs_unless_enabled(runtime: Runtime, settings: Settings) -> None:
    # What Settings makes of AFTERSALE_ENV=production without AFTERSALE_API_DOCS
    # (tests/test_config.py): model_copy skips the production secrets check.
    production = settings.model_copy(update={"env": "production", "api_docs": False})
    async with client_for(runtime, production) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/docs/assets/swagger-ui.css")).status_code == 404
        assert (await http.get("/")).status_code == 302
    enabled = production.model_copy(update={"api_docs": True})
    async with client_for(runtime, enabled) as http:
        assert (await http.get("/docs")).status_code == 200
