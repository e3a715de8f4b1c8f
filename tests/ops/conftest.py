"""An app with a revoked key, a metrics token and a small public rate, and its clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.runtime import Runtime
from tests.conftest import TEST_API_KEY

# Still listed as a key, and revoked: revocation wins.
REVOKED_API_KEY = "revoked-api-key-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
PUBLIC_BURST = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": [TEST_API_KEY, REVOKED_API_KEY],
            "revoked_api_keys": [REVOKED_API_KEY],
            "metrics_token": METRICS_TOKEN,
            "public_rate_per_minute": 60.0,
            "public_rate_burst": PUBLIC_BURST,
        }
    )


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(runtime=runtime, role="api")
    async with LifespanManager(application):
        yield application


Visitor = Callable[[str], AsyncClient]


@pytest.fixture
async def visitor(app: FastAPI) -> AsyncIterator[Visitor]:
    """`visitor(ip)`: a client whose requests come from `ip`, as the server sees them."""
    clients: list[AsyncClient] = []

    def make(ip: str) -> AsyncClient:
        transport = ASGITransport(app=app, client=(ip, 50123))
        clients.append(AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(visitor: Visitor) -> AsyncClient:
    """A client on the same host (loopback), as a local Prometheus would be."""
    return visitor("127.0.0.1")
