"""`aftersale coupons import` and `status`, and GET /api/v1/coupons, on a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.cli import main
from app.config import Settings
from app.db import transaction
from app.models import CouponCode
from app.runtime import Runtime
from tests.conftest import Api
from tests.coupons.conftest import POOL, add_pool, seed_messages
from tests.mail.test_preview import cli_env


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    cli_env(monkeypatch, settings)


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # The command runs its own event loop, as it does from a shell.
    code = await asyncio.to_thread(main, ["coupons", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


async def stored(runtime: Runtime) -> list[tuple[str, str, str | None, datetime | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(
                CouponCode.pool, CouponCode.code, CouponCode.shop, CouponCode.expires_at
            ).order_by(CouponCode.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_import_counts_refusals_and_a_second_import_changes_nothing(
    cli: None, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code,expires_at\nBDAY-1\nBDAY-2,2027-01-31\nBAD CODE\nBDAY-3\nBDAY-1\n")
    code, out, err = await run(capsys, "import", POOL, str(path))
    assert code == 0
    assert out.strip() == (
        f"{path}: 3 added, 1 already in the pool, 1 refused; pool {POOL}, any shop"
    )
    assert err.splitlines() == [f"{path}:4: code contains whitespace or a control character"]
    assert await stored(runtime) == [
        (POOL, "BDAY-1", None, None),
        (POOL, "BDAY-2", None, datetime(2027, 1, 31, tzinfo=UTC)),
        (POOL, "BDAY-3", None, None),
    ]
    path.write_text("BDAY-1\nBDAY-4\n")
    code, out, _ = await run(capsys, "import", POOL, str(path))
    assert code == 0
    assert f"{path}: 1 added, 1 already in the pool, 0 refused" in out
    assert len(await stored(runtime)) == 4


async def test_shop_codes_and_other_pools_are_kept_apart(
    cli: None, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("TEA-1\nTEA-2\n")
    code, out, _ = await run(capsys, "import", "TEA", str(path), "--shop", "Tea-House.example")
    assert code == 0 and "shop tea-house.example" in out
    # The same codes in another pool are other codes.
    code, out, _ = await run(capsys, "import", POOL, str(path))
    assert code == 0 and "2 added" in out
    assert [(pool, shop) for pool, _, shop, _ in await stored(runtime)] == [
        ("TEA", "tea-house.example"),
        ("TEA", "tea-house.example"),
        (POOL, None),
        (POOL, None),
    ]


async def test_a_file_without_any_valid_code_fails(
    cli: None, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code\n\nnot valid\n" + "Y" * 70 + "\n")
    code, _, err = await run(capsys, "import", POOL, str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}:3: code contains whitespace or a control character",
        f"{path}:4: code longer than 64 characters",
        f"aftersale coupons import: {path}: no valid code, nothing imported",
    ]
    assert await stored(runtime) == []


async def test_bad_pool_names_shops_and_files_are_usage_errors(
    cli: None, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("A1\n")
    code, _, err = await run(capsys, "import", "no spaces", str(path))
    assert code == 2 and "pool name 'no spaces'" in err
    code, _, err = await run(capsys, "import", POOL, str(path), "--shop", "not a host")
    assert code == 2 and "--shop" in err
    code, _, err = await run(capsys, "import", POOL, str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv" in err
    (tmp_path / "latin1.csv").write_bytes("CAF\xc9".encode("latin-1"))
    code, _, err = await run(capsys, "import", POOL, str(tmp_path / "latin1.csv"))
    assert code == 2 and "not UTF-8" in err
    assert await stored(runtime) == []


async def _scenario(runtime: Runtime) -> None:
    """BIRTHDAY: 5 codes, 2 handed out (1 of them redeemed), 1 expired unused; TEA: 1 code."""
    now = runtime.clock.now()
    await add_pool(runtime, ["B-1", "B-2", "B-3", "B-4"])
    await add_pool(runtime, ["B-OLD"], expires_at=now - timedelta(days=1))
    await add_pool(runtime, ["T-1"], pool="TEA", shop="tea.example")
    ids = list((await seed_messages(runtime, 2)).values())
    async with transaction(runtime.session_factory) as session:
        codes = (
            await session.execute(
                select(CouponCode)
                .where(CouponCode.code.in_(["B-1", "B-2"]))
                .order_by(CouponCode.id)
            )
        ).scalars()
        for code, message_id in zip(codes, ids, strict=True):
            code.message_id, code.assigned_at = message_id, now
            if code.code == "B-1":
                code.redeemed_at = now
    return None


async def test_status_command(
    cli: None, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    await _scenario(runtime)
    code, out, _ = await run(capsys, "status")
    assert code == 0
    assert out.splitlines() == [
        "pool      total  free  assigned  redeemed  expired",
        "BIRTHDAY      5     2         2         1        1",
        "TEA           1     1         0         0        0",
    ]
    code, out, _ = await run(capsys, "status", "TEA")
    assert code == 0 and len(out.splitlines()) == 2
    code, out, err = await run(capsys, "status", "NONE")
    assert (code, out, err.strip()) == (1, "", "no coupon codes in pool NONE")


async def test_status_api(client: AsyncClient, api: Api, runtime: Runtime) -> None:
    await _scenario(runtime)
    assert (await client.get("/api/v1/coupons")).status_code == 401
    response = await client.get("/api/v1/coupons", headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "pools": [
            {"pool": POOL, "total": 5, "free": 2, "assigned": 2, "redeemed": 1, "expired": 1},
            {"pool": "TEA", "total": 1, "free": 1, "assigned": 0, "redeemed": 0, "expired": 0},
        ]
    }
    one = await client.get("/api/v1/coupons", params={"pool": "TEA"}, headers=api.headers)
    assert [row["pool"] for row in one.json()["pools"]] == ["TEA"]
    bad = await client.get("/api/v1/coupons", params={"pool": "a b"}, headers=api.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "pool"]
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/coupons" in schema["paths"]
