"""Group commit: the small writes of concurrent sends share one transaction.

Each message of a batch records a few rows (its tracked links before the send, its outcome
after). One transaction each costs a pooled connection, a round trip to begin and one to
commit; a send's writes are what limits a worker. The dispatcher hands each write to a
`GroupCommit`, which runs every write waiting at that moment in one transaction, so the
commits per message fall as concurrency rises. A caller still resumes only once its write
is committed, so "recorded" means what it meant before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]


class GroupCommit:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, max_group: int = 64
    ) -> None:
        self._session_factory = session_factory
        self._max_group = max_group
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._in_flight: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `write` in a transaction shared with the writes waiting now; its result once
        committed. Raises what `write` raised, or the commit's error."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            await self._flush_waiting()
        except BaseException as exc:
            # Cancelled (the loop is closing): nobody may wait forever for a write that
            # will not run.
            for _, future in [*self._in_flight, *self._waiting]:
                if not future.done():
                    future.set_exception(exc)
            self._in_flight, self._waiting = [], []
            raise

    async def _flush_waiting(self) -> None:
        while self._waiting:
            group = self._in_flight = self._waiting[: self._max_group]
            del self._waiting[: self._max_group]
            if len(group) == 1:
                await self._run_alone(*group[0])
                continue
            try:
                async with transaction(self._session_factory) as session:
                    results = [await write(session) for write, _ in group]
            except Exception:
                # One bad write (or a lost connection) must not fail its neighbours: the
                # shared transaction rolled back, so each write runs again on its own and
                # only the writes that fail alone report an error.
                log.debug("a group of %d writes failed; running them one by one", len(group))
                for write, future in group:
                    await self._run_alone(write, future)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():  # its caller may have been cancelled
                        future.set_result(result)

    async def _run_alone(self, write: Write, future: asyncio.Future[Any]) -> None:
        try:
            async with transaction(self._session_factory) as session:
                result = await write(session)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
