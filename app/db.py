"""Database engine, sessions and the column types every table shares."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event, exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every database.

    SQLite keeps no zone, so values are normalised to UTC before they are stored; naive
    datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Connections each process keeps to PostgreSQL (AFTERSALE_DATABASE_POOL_SIZE).
DEFAULT_POOL_SIZE = 20


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE, **kwargs: Any) -> AsyncEngine:
    """An engine with the connection settings each database needs to share work safely
    (`pool_size`: PostgreSQL's; a SQLite file needs no pool of its own)."""
    # Database errors otherwise quote their SQL parameters (addresses, names) into the
    # messages that end up in logs.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Several writers (API and worker) share the file: wait for the lock instead of failing.
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Our own pre-ping (below) unless the caller chooses pool_pre_ping itself.
    ping_idle = "pool_pre_ping" not in kwargs
    # A fixed pool: connections SQLAlchemy opens beyond pool_size ("overflow") are closed
    # again when handed back while the pool is full, so under sustained load with bursts
    # each burst opened and closed new ones (PostgreSQL forks a backend for each, and every
    # new connection prepares its statements anew). Waiting for a pooled one is cheaper.
    kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("max_overflow", 0)
    # The connection handed back last is taken first: a steady load keeps reusing a few
    # warm ones (within the idle ping's window below) instead of rotating through all of
    # them, and the rest are only pinged when a burst reaches them.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(url, **kwargs)
    if ping_idle:
        _ping_idle_connections(engine)
    return engine


# SQLAlchemy's pool_pre_ping costs three round trips per checkout on asyncpg (BEGIN, ping,
# ROLLBACK). A connection handed back a moment ago needs none: a database restart takes far
# longer than this, and a connection that dies mid-use fails alike with a ping or without.
# Under load connections change hands within milliseconds, so none is pinged; one idle any
# longer is pinged on checkout and, if dead, the pool is refilled, as pool_pre_ping does.
PING_AFTER_IDLE_SECONDS = 0.05
_USED_AT = "aftersale_used_at"


def _ping_idle_connections(engine: AsyncEngine) -> None:
    dialect = engine.dialect

    def used(_dbapi_connection: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        used_at = record.info.get(_USED_AT)
        if used_at is not None and time.monotonic() - used_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As pool_pre_ping: this and every older pooled connection are replaced.
                raise exc.InvalidatePoolError() from error
            raise

    # A new connection counts as just used; the info dict is emptied when one is replaced.
    event.listen(engine.sync_engine, "connect", used)
    event.listen(engine.sync_engine, "checkin", used)
    event.listen(engine.sync_engine, "checkout", ping_if_idle)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one process writes; busy_timeout makes writers queue.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLite's own lower() folds ASCII only ("Öko" stays "Öko"); PostgreSQL's folds every
    # letter. Searches lower both sides, so SQLite gets Python's, as deterministic.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine `create_session_factory` bound the sessions to (a statement that needs no
    session takes its connection there)."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine), "sessions bound to an engine"
    return engine


@asynccontextmanager
async def transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error."""
    async with session_factory() as session, session.begin():
        yield session


def utcnow() -> datetime:
    return datetime.now(UTC)


def dialect_insert(session: AsyncSession | AsyncConnection) -> Any:
    """The dialect's INSERT construct, which has ON CONFLICT on both SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect if isinstance(session, AsyncSession) else session.dialect
    return pg_insert if dialect.name == "postgresql" else sqlite_insert


LIKE_ESCAPE = "\\"


def containing(text: str) -> str:
    """A LIKE pattern (with `escape=LIKE_ESCAPE`) for values that contain `text` as typed:
    its `%` and `_` are characters, not wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
