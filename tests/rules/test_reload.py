"""Hot reload: atomic swap of a good rule set, the last good one kept on errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from httpx import AsyncClient

from app.rules.source import RulesSource
from app.runtime import Runtime
from tests.conftest import Api

GOOD = "rules:\n  - id: hello\n    when: {event: order.created}\n    template: thank-you\n"
BETTER = GOOD + "  - id: again\n    when: {event: order.fulfilled}\n    template: thank-you\n"
BROKEN = "rules:\n  - id: hello\n    when: {event: order.created}\n    tempalte: thank-you\n"


async def test_rules_api_and_reload(
    client: AsyncClient, api: Api, runtime: Runtime, tmp_path: Path
) -> None:
    assert (await client.get("/api/v1/rules")).status_code == 401
    (tmp_path / "rules.yaml").write_text(GOOD)
    runtime.rules = RulesSource(tmp_path)
    assert runtime.rules.reload()
    listed = (await client.get("/api/v1/rules", headers=api.headers)).json()
    assert [rule["id"] for rule in listed["rules"]] == ["hello"]
    first_version = listed["version"]

    (tmp_path / "rules.yaml").write_text(BROKEN)
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert response.status_code == 422
    body = response.json()
    assert body["version"] == first_version  # the last good set stays in use
    assert [rule["id"] for rule in body["rules"]] == ["hello"]
    assert any("rules.yaml:4:5: unknown key 'tempalte'" in error for error in body["errors"])
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["rules"]["pending_errors"] == body["errors"]

    (tmp_path / "rules.yaml").write_text(BETTER)
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == [] and body["version"] != first_version
    assert [rule["id"] for rule in body["rules"]] == ["hello", "again"]


async def test_watcher_picks_up_edits_within_its_interval(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(GOOD)
    source = RulesSource(tmp_path)
    assert source.reload()
    watcher = asyncio.create_task(source.watch(interval=0.05))
    try:
        (tmp_path / "rules.yaml").write_text(BETTER)
        for _ in range(100):
            if len(source.current.rules) == 2:
                break
            await asyncio.sleep(0.05)
        assert [rule.id for rule in source.current.rules] == ["hello", "again"]
        (tmp_path / "rules.yaml").write_text(BROKEN)
        for _ in range(100):
            if source.errors:
                break
            await asyncio.sleep(0.05)
        assert source.errors and len(source.current.rules) == 2  # kept the last good set
    finally:
        watcher.cancel()
