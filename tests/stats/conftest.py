"""Tracked mail, sent through the SMTP sink and read through the app, then the stats API.

The tracking tests' fixtures (a marketing rule `links` with a template full of links, and
clients that fetch from chosen addresses) are reused as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.rollup import FoldReport, fold_stats
from tests.conftest import Api
from tests.outbox.conftest import make_dispatcher
from tests.tracking.conftest import client, settings  # noqa: F401

SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-s")
    yield worker
    await worker.sender.close()


async def fold(runtime: Runtime) -> FoldReport:
    """The rollup job, folding everything committed (nothing else writes during a test)."""
    return await fold_stats(runtime, settle=timedelta(0))


async def rules_stats(
    http: AsyncClient, api: Api, **params: str
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """`GET /api/v1/stats/rules` as {(rule, variant): row}."""
    response = await http.get("/api/v1/stats/rules", params={**SPAN, **params}, headers=api.headers)
    assert response.status_code == 200, response.text
    return {(row["rule"], row["variant"]): row for row in response.json()["rows"]}


async def links_row(http: AsyncClient, api: Api, **params: str) -> dict[str, Any]:
    return (await rules_stats(http, api, **params))[("links", None)]
