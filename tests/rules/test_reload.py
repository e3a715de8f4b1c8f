"""Hot reload: atomic swap of a good rule set, the last good one kept on errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from httpx import AsyncClient

from app.preview.lint import TemplateCheck
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


def checked_source(rules: Path, templates: Path) -> RulesSource:
    return RulesSource(
        rules, templates=TemplateCheck(templates, default_locale="en", time_limit=0.5)
    )


def write_template(templates: Path, locale: str, body: str) -> None:
    folder = templates / "hello" / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt").write_text("Hi {{ customer.first_name }}")
    (folder / "body.html").write_text(body)


HELLO = "rules:\n  - id: hello\n    when: {event: order.created}\n    template: hello\n"
SLOW = (
    "{% for i in range(1000) %}{% for j in range(50) %}"
    "{{ (range(2000)|list|join)|length }}{% endfor %}{% endfor %}"
)


async def test_reload_refuses_a_slow_or_broken_template_and_keeps_the_last_good_rules(
    client: AsyncClient, api: Api, runtime: Runtime, tmp_path: Path
) -> None:
    rules, templates = tmp_path / "r", tmp_path / "t"
    rules.mkdir()
    (rules / "rules.yaml").write_text(HELLO)
    write_template(templates, "en", "<p>Hello {{ customer.first_name }}</p>")
    write_template(templates, "de", "<p>Hallo {{ customer.first_name }}</p>")
    runtime.rules = checked_source(rules, templates)
    assert runtime.rules.reload(), runtime.rules.errors
    good = runtime.rules.current.version

    # A rules edit that brings a slow German template with it.
    write_template(templates, "de", f"<p>{SLOW}</p>")
    (rules / "rules.yaml").write_text(HELLO.replace("id: hello", "id: hello2"))
    started = time.perf_counter()
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert time.perf_counter() - started < 3  # stopped at the 0.5 s limit
    assert response.status_code == 422
    body = response.json()
    assert body["version"] == good and [rule["id"] for rule in body["rules"]] == ["hello"]
    [error] = body["errors"]
    assert "rules.yaml:4:15: template 'hello' (de) is too slow to render" in error
    assert "rendering took longer than 0.5 s" in error
    ready = await client.get("/readyz")
    assert ready.status_code == 200  # the last good rules still serve
    assert ready.json()["checks"]["rules"]["pending_errors"] == [error]

    # Fixed: the next reload applies the edit.
    write_template(templates, "de", "<p>Hallo {{ customer.first_name }}</p>")
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert response.status_code == 200
    assert [rule["id"] for rule in response.json()["rules"]] == ["hello2"]


async def test_a_template_edit_alone_is_checked_by_the_watcher(tmp_path: Path) -> None:
    rules, templates = tmp_path / "r", tmp_path / "t"
    rules.mkdir()
    (rules / "rules.yaml").write_text(HELLO)
    write_template(templates, "en", "<p>Hello {{ customer.first_name }}</p>")
    source = checked_source(rules, templates)
    assert source.reload()
    watcher = asyncio.create_task(source.watch(interval=0.05))
    try:
        # Only with names that are not plain ASCII does this fail.
        write_template(templates, "en", "<p>{{ customer.last_name.encode('ascii') }}</p>")
        for _ in range(100):
            if source.errors:
                break
            await asyncio.sleep(0.05)
        [error] = source.errors
        assert "template 'hello' (en, non-ASCII names) does not render" in error
        assert "'ascii' codec can't encode" in error
        assert source.loaded and [rule.id for rule in source.current.rules] == ["hello"]
        write_template(templates, "en", "<p>Hello again</p>")
        for _ in range(100):
            if not source.errors:
                break
            await asyncio.sleep(0.05)
        assert source.errors == ()
    finally:
        watcher.cancel()


def test_a_bad_template_at_start_leaves_the_rules_unloaded(tmp_path: Path) -> None:
    rules, templates = tmp_path / "r", tmp_path / "t"
    rules.mkdir()
    (rules / "rules.yaml").write_text(HELLO)
    write_template(templates, "en", "<p>{{ customer.first_name[0] }}</p>")
    source = checked_source(rules, templates)
    assert not source.reload()
    assert not source.loaded  # as with a YAML error: /readyz says not ready, and why
    [error] = source.errors
    assert "template 'hello' (en, no names) does not render" in error
