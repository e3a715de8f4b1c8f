"""What one process shares between requests and jobs: settings, database, rules, clock."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock, SystemClock
from app.config import ConfigError, Settings
from app.db import create_engine, create_session_factory
from app.rules.source import RulesSource, TemplatesCheck


def freeze_startup_heap() -> None:
    """Put what a long-running process has loaded once started (modules, routes, schemas,
    rules, templates, pools) out of the garbage collector's reach: it lives as long as the
    process, and every full collection walked it again. For `serve` only, once started:
    frozen objects are never collected, so tests and one-shot commands do not call it.

    Measured (bench/ingest.py): each full collection of an API process stalled every
    request for ~40 ms, which made the p99 at 80 % of saturation several hundred ms."""
    gc.collect()
    gc.freeze()


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    rules: RulesSource
    clock: Clock

    @classmethod
    def create(
        cls, settings: Settings, *, templates: TemplatesCheck | None, clock: Clock | None = None
    ) -> Runtime:
        """`templates`: what every reload renders, `TemplateCheck.for_settings(settings)`
        (app/preview/lint.py) in every process. The caller gives it because this module,
        imported by every router, must not import what rendering needs (package cycles);
        None checks rule files only."""
        rules = RulesSource(settings.rules_dir, templates=templates, bounds=settings.rules_bounds)
        rules.reload()
        # Where rules are loaded at startup: some need settings (a marketing rule, the
        # shop's postal address in production), and the service refuses to start without.
        problem = settings.rules_problem(marketing_rules=rules.current.marketing_rule_ids)
        if problem is not None:
            raise ConfigError(problem)
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            rules=rules,
            clock=clock or SystemClock(),
        )

    async def close(self) -> None:
        await self.engine.dispose()
