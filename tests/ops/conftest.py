"""An app with a revoked key, a metrics token and a small public rate, and its clients."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.config import Settings
from tests.conftest import TEST_API_KEY, Visitor

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
async def client(visitor: Visitor) -> AsyncClient:
    """A client on the same host (loopback), as a local Prometheus would be."""
    return visitor("127.0.0.1")
