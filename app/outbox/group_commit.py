"""Group commit: the small writes of concurrent sends share one transaction.

Each message of a batch records a few rows (its tracked links before the send, its outcome
after). One transaction each costs a pooled connection, a round trip to begin and one to
commit; a send's writes are what limits a worker. The dispatcher hands each write to a
`GroupCommit`, which runs every write waiting at that moment in one transaction, so the
commits per message fall as concurrency rises. A caller still resumes only once its write
is committed, so "recorded" means what it meant before.

The common writes (tracked links, outcomes) go further with `run_batched`: the items of
every caller of one batched write in the group go to it together, so they become one
statement for the group rather than one per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
Write = Callable[[AsyncSession], Awaitable[Any]]
# Writes the items of many callers in one go; a result per item, in their order.
BatchWrite = Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[Any]]]


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    write: Write | None = None
    batch: BatchWrite | None = None
    item: Any = None


class GroupCommit:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, max_group: int = 64
    ) -> None:
        self._session_factory = session_factory
        self._max_group = max_group
        self._waiting: list[_Pending] = []
        self._in_flight: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `write` in a transaction shared with the writes waiting now; its result once
        committed. Raises what `write` raised, or the commit's error."""
        return await self._add(_Pending(self._new_future(), write=write))  # type: ignore[no-any-return]

    async def run_batched(
        self, write: Callable[[AsyncSession, Sequence[Item]], Awaitable[Sequence[T]]], item: Item
    ) -> T:
        """`write` `item` together with the other items for the same `write` waiting now,
        in one call and the shared transaction; this item's result once committed."""
        pending = _Pending(self._new_future(), batch=write, item=item)
        return await self._add(pending)  # type: ignore[no-any-return]

    @staticmethod
    def _new_future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _add(self, pending: _Pending) -> Any:
        self._waiting.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await pending.future

    async def _flush(self) -> None:
        try:
            await self._flush_waiting()
        except BaseException as exc:
            # Cancelled (the loop is closing): nobody may wait forever for a write that
            # will not run.
            for pending in [*self._in_flight, *self._waiting]:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            self._in_flight, self._waiting = [], []
            raise

    async def _flush_waiting(self) -> None:
        while self._waiting:
            group = self._in_flight = self._waiting[: self._max_group]
            del self._waiting[: self._max_group]
            if len(group) == 1:
                await self._run_alone(group[0])
                continue
            try:
                async with transaction(self._session_factory) as session:
                    results = await _write_group(session, group)
            except Exception:
                # One bad write (or a lost connection) must not fail its neighbours: the
                # shared transaction rolled back, so each write runs again on its own and
                # only the writes that fail alone report an error.
                log.debug(
                    "a group of %d writes failed; running them one by one",
                    len(group),
                    exc_info=True,
                )
                for pending in group:
                    await self._run_alone(pending)
            else:
                for pending, result in zip(group, results, strict=True):
                    if not pending.future.done():  # its caller may have been cancelled
                        pending.future.set_result(result)

    async def _run_alone(self, pending: _Pending) -> None:
        try:
            async with transaction(self._session_factory) as session:
                (result,) = await _write_group(session, [pending])
        except Exception as exc:
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(result)


async def _write_group(session: AsyncSession, group: Sequence[_Pending]) -> list[Any]:
    """Every write of `group` in `session`: plain writes one by one, then each batched
    write once with all its items. Each caller's writes wait for the one before to commit,
    so no two of one caller's writes are ever in one group and their order is kept."""
    results: list[Any] = [None] * len(group)
    batches: dict[BatchWrite, list[int]] = {}
    for index, pending in enumerate(group):
        if pending.batch is not None:
            batches.setdefault(pending.batch, []).append(index)
        else:
            assert pending.write is not None
            results[index] = await pending.write(session)
    for batch, indexes in batches.items():
        written = await batch(session, [group[index].item for index in indexes])
        for index, result in zip(indexes, written, strict=True):
            results[index] = result
    return results
