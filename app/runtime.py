"""What one process shares between requests and jobs: settings, database, rules, clock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.rules.source import RulesSource


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    rules: RulesSource
    clock: Clock

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        engine = create_engine(settings.database_url)
        rules = RulesSource(settings.rules_dir, bounds=settings.rules_bounds)
        rules.reload()
        return cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            rules=rules,
            clock=clock or SystemClock(),
        )

    async def close(self) -> None:
        await self.engine.dispose()
