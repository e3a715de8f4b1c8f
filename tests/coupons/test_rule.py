"""The `coupon:` rule key: its format, the JSON Schema, `rules check`, and previews."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy import func, select

from app.cli import main
from app.config import ROOT
from app.models import CouponCode
from app.rules.loader import load_rules
from app.rules.model import Rule
from app.runtime import Runtime
from tests.conftest import Api
from tests.coupons.conftest import add_pool, use_coupon_rule
from tests.factories import order_created

BASE = {"id": "promo", "when": {"event": "birthday"}, "send": {"at": "0d"}, "template": "t"}


def test_coupon_key_defaults_and_refusals() -> None:
    rule = Rule.model_validate(BASE | {"coupon": {"pool": "BIRTHDAY"}})
    assert rule.coupon is not None
    assert (rule.coupon.pool, rule.coupon.when_empty) == ("BIRTHDAY", "skip")
    assert Rule.model_validate(BASE).coupon is None
    for bad, words in [
        ({"pool": "two words"}, "pool"),
        ({"pool": "P", "when_empty": "wait"}, "when_empty"),
        ({"pool": "P", "pol": "x"}, "pol"),
        ({}, "pool"),
    ]:
        with pytest.raises(ValidationError, match=words):
            Rule.model_validate(BASE | {"coupon": bad})
    with pytest.raises(ValidationError, match="'coupon' is an offer"):
        Rule.model_validate(BASE | {"kind": "transactional", "coupon": {"pool": "P"}})


def test_schema_shows_the_coupon_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    coupon = schema["$defs"]["Coupon"]
    assert coupon["required"] == ["pool"]
    assert coupon["properties"]["when_empty"]["enum"] == ["skip", "send"]
    assert "coupon" in schema["$defs"]["Rule"]["properties"]


def _check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], coupon: str, body: str
) -> tuple[int, list[str]]:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir(parents=True)
    (templates / "gift" / "en").mkdir(parents=True)
    (templates / "gift" / "en" / "subject.txt").write_text("A gift")
    (templates / "gift" / "en" / "body.html").write_text(body)
    (rules / "r.yaml").write_text(
        "rules:\n"
        "  - id: gift\n"
        "    when: {event: birthday}\n"
        "    send: {at: 0d}\n"
        "    template: gift\n" + (f"    coupon: {coupon}\n" if coupon else "")
    )
    code = main(["rules", "check", str(rules), "--templates", str(templates)])
    return code, [line.replace(f"{rules}/", "") for line in capsys.readouterr().out.splitlines()]


def test_rules_check_renders_with_a_sample_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(tmp_path, capsys, "{pool: GIFT}", "<p>{{ coupon.code }}</p>")[0] == 0


def test_rules_check_wants_a_guard_when_the_pool_may_run_dry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _check(
        tmp_path, capsys, "{pool: GIFT, when_empty: send}", "<p>{{ coupon.code }}</p>"
    )
    assert code == 1
    assert lines[0].startswith(
        "r.yaml:5:15: template 'gift' (en, without a coupon: the pool may be empty) does not render"
    )


def test_rules_check_passes_a_guarded_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guarded = "<p>{% if coupon %}{{ coupon.code }}{% else %}No code{% endif %}</p>"
    assert _check(tmp_path, capsys, "{pool: GIFT, when_empty: send}", guarded)[0] == 0
    # The same template serves a rule without a coupon.
    assert _check(tmp_path / "plain", capsys, "", guarded)[0] == 0


def test_rules_check_refuses_a_code_in_a_rule_without_a_coupon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _check(tmp_path, capsys, "", "<p>{{ coupon.code }}</p>")
    assert code == 1 and lines[0].startswith("r.yaml:5:15: template 'gift' (en) does not render")


def test_shipped_birthday_rule_has_a_coupon() -> None:
    rule = load_rules(ROOT / "rules").by_id("birthday")
    assert rule is not None and rule.coupon is not None
    assert (rule.coupon.pool, rule.coupon.when_empty) == ("BIRTHDAY", "send")


async def test_preview_shows_a_sample_code_and_takes_none(
    client: AsyncClient, api: Api, runtime: Runtime, tmp_path: Path
) -> None:
    use_coupon_rule(runtime, tmp_path / "rules")
    await add_pool(runtime, ["REAL-1"])
    response = await client.post(
        "/api/v1/preview?rule=promo", json=order_created(), headers=api.headers
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert "SAMPLE-CODE" in preview["text"] and "SAMPLE-CODE" in preview["html"]
    assert "REAL-1" not in preview["text"]
    async with runtime.session_factory() as session:
        taken = await session.scalar(
            select(func.count()).select_from(CouponCode).where(CouponCode.assigned_at.is_not(None))
        )
    assert taken == 0
