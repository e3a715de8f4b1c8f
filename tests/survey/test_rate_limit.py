"""The survey links are public: one client gets the same per-IP budget as /o/, /c/ and /u/."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.conftest import Visitor


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_rate_per_minute": 60.0, "public_rate_burst": 3})


async def test_survey_links_share_the_public_rate_limit(visitor: Visitor) -> None:
    busy, other = visitor("203.0.113.7"), visitor("203.0.113.8")
    assert (await busy.get("/s/not-a-token/5")).status_code == 404
    assert (await busy.post("/s/not-a-token/comment", data={"comment": "x"})).status_code == 404
    assert (await busy.get("/c/not-a-token")).status_code == 404  # one bucket for all links
    limited = await busy.get("/s/not-a-token/6")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert (await busy.post("/s/not-a-token/comment", data={"comment": "x"})).status_code == 429
    assert (await other.get("/s/not-a-token/5")).status_code == 404
