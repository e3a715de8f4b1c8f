"""The pool's ping (PostgreSQL; SQLite has no pool to ping): a connection handed back moments
ago is used without one, one idle longer is pinged and replaced when dead, and a dead one used
unpinged fails once, after which the pool has recovered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    if db.is_sqlite(database_url):
        pytest.skip("the pool ping is for PostgreSQL")
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
def pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ping the pool sends."""
    sent: list[Any] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(database_url: str, pid: int) -> None:
    """End a backend from another connection, as a restart would, and wait until it is gone."""
    killer = db.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with killer.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):
                alive = await connection.execute(
                    text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                if alive.first() is None:
                    return
                await asyncio.sleep(0.05)
    finally:
        await killer.dispose()
    raise AssertionError(f"backend {pid} did not end")


async def test_a_connection_just_handed_back_is_not_pinged(
    engine: AsyncEngine, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 60.0)
    first = await backend_pid(engine)
    assert await backend_pid(engine) == first
    assert pings == []


async def test_an_idle_connection_is_pinged_and_replaced_when_dead(
    engine: AsyncEngine, pings: list[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.2)
    first = await backend_pid(engine)
    await terminate(database_url, first)
    await asyncio.sleep(0.25)
    assert await backend_pid(engine) != first
    # The dead connection only: its replacement, just connected, is known alive.
    assert len(pings) == 1


async def test_a_dead_connection_used_unpinged_fails_once_then_the_pool_recovers(
    engine: AsyncEngine, pings: list[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 60.0)
    first = await backend_pid(engine)
    await terminate(database_url, first)
    with pytest.raises(DBAPIError) as failed:
        await backend_pid(engine)
    assert failed.value.connection_invalidated
    assert await backend_pid(engine) != first
    assert pings == []
