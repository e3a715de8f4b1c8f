"""Shared fixtures: a migrated database (SQLite or PostgreSQL), an SMTP sink, an app client.

The database is chosen by AFTERSALE_TEST_DATABASE_URL (default: a SQLite file per run);
`.ci/run` runs the whole suite once per database.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import ROOT, Settings
from app.db import Base, create_engine, create_session_factory
from app.rules.source import RulesSource
from app.runtime import Runtime
from tests.smtp_sink import SmtpSink

TEST_API_KEY = "test-api-key-0123456789"
TEST_WEBHOOK_SECRET = "test-webhook-secret-0123456789"


def _database_url(tmp_root: Path) -> str:
    return os.environ.get("AFTERSALE_TEST_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tmp_root / 'test.db'}"
    )


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
async def migrated_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, Exception) as exc:
        await engine.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"database {database_url} unreachable in CI: {exc}")
        pytest.skip(f"database {database_url} unreachable, skipping database tests: {exc}")
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await connection.run_sync(_alembic_upgrade)
    yield engine
    await engine.dispose()


def _alembic_upgrade(sync_connection: Any) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")


@pytest.fixture
async def engine(migrated_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The migrated database, emptied before each test (tests commit, as the app does)."""
    async with migrated_engine.begin() as connection:
        tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))
    yield migrated_engine


class FrozenClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> FrozenClock:
    # Just after the orders the factories make, so their thank-you is due and not expired.
    return FrozenClock(datetime(2026, 11, 20, 10, 0, tzinfo=UTC))


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink, tmp_path: Path) -> Settings:
    # Only the thank-you rule, so the other sample rules do not change what tests expect.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shutil.copy(ROOT / "rules" / "thank-you.yaml", rules_dir)
    return Settings(
        env="development",
        database_url=database_url,
        smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off&pool_size=2&timeout=5",
        api_keys=[TEST_API_KEY],
        webhook_secret=TEST_WEBHOOK_SECRET,
        rules_dir=rules_dir,
        templates_dir=ROOT / "templates" / "email",
        dev_outbox_dir=tmp_path / "outbox",
        retry_base_seconds=60,
        lease_seconds=60,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def runtime(settings: Settings, engine: AsyncEngine, clock: FrozenClock) -> Runtime:
    rules = RulesSource(settings.rules_dir)
    assert rules.reload(), rules.errors
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        rules=rules,
        clock=clock,
    )


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[AsyncClient]:
    from app.main import create_app

    app = create_app(runtime=runtime, role="api")
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


@dataclass
class Api:
    """Auth headers for the operator API."""

    headers: dict[str, str]


@pytest.fixture
def api() -> Api:
    return Api(headers={"Authorization": f"Bearer {TEST_API_KEY}"})


# A running app that several test folders drive as different clients (by source IP).
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
