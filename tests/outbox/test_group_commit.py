"""Group commit: concurrent writes share a transaction, and one bad write fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Suppression
from app.outbox.group_commit import GroupCommit
from app.runtime import Runtime


@pytest.fixture
def commits(runtime: Runtime) -> Iterator[list[int]]:
    seen: list[int] = []

    def on_commit(_connection: object) -> None:
        seen.append(1)

    event.listen(runtime.engine.sync_engine, "commit", on_commit)
    yield seen
    event.remove(runtime.engine.sync_engine, "commit", on_commit)


def add(email: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
    async def write(session: AsyncSession) -> str:
        await session.execute(insert(Suppression).values(email=email, reason="manual"))
        if fail:
            raise RuntimeError(f"{email} is refused")
        return email

    return write


async def stored(runtime: Runtime) -> set[str]:
    async with runtime.session_factory() as session:
        return set((await session.execute(select(Suppression.email))).scalars())


async def test_concurrent_writes_share_one_commit(runtime: Runtime, commits: list[int]) -> None:
    writes = GroupCommit(runtime.session_factory)
    emails = [f"c{number}@example.com" for number in range(10)]

    results = await asyncio.gather(*(writes.run(add(email)) for email in emails))

    assert results == emails
    assert await stored(runtime) == set(emails)
    assert len(commits) == 1


async def test_a_failing_write_fails_alone(runtime: Runtime, commits: list[int]) -> None:
    writes = GroupCommit(runtime.session_factory)
    emails = [f"c{number}@example.com" for number in range(6)]

    results = await asyncio.gather(
        *(writes.run(add(email, fail=email == "c3@example.com")) for email in emails),
        return_exceptions=True,
    )

    assert [type(result) for result in results] == [str, str, str, RuntimeError, str, str]
    assert str(results[3]) == "c3@example.com is refused"
    assert await stored(runtime) == set(emails) - {"c3@example.com"}
    # The shared attempt rolled back; then each write committed on its own.
    assert len(commits) == 5


async def test_writes_arriving_during_a_commit_form_the_next_group(
    runtime: Runtime, commits: list[int]
) -> None:
    writes = GroupCommit(runtime.session_factory)
    first = asyncio.create_task(writes.run(add("first@example.com")))
    await asyncio.sleep(0)  # the first write's group is under way
    later = [f"later{number}@example.com" for number in range(4)]

    results = await asyncio.gather(first, *(writes.run(add(email)) for email in later))

    assert results == ["first@example.com", *later]
    assert await stored(runtime) == {"first@example.com", *later}
    assert len(commits) == 2


async def test_a_lone_write_reports_its_error_once(runtime: Runtime, commits: list[int]) -> None:
    writes = GroupCommit(runtime.session_factory)

    with pytest.raises(RuntimeError, match="refused"):
        await writes.run(add("alone@example.com", fail=True))

    assert await stored(runtime) == set()
    assert commits == []
    assert await writes.run(add("next@example.com")) == "next@example.com"
    async with runtime.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 1


def add_many(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    """A batched write: all its items in one INSERT; refuses a group holding `bad@...`."""

    async def write(session: AsyncSession, emails: Sequence[str]) -> list[str]:
        calls.append(list(emails))
        if "bad@example.com" in emails:
            raise RuntimeError("bad@example.com is refused")
        await session.execute(
            insert(Suppression), [{"email": email, "reason": "manual"} for email in emails]
        )
        return [email.upper() for email in emails]

    return write


async def test_batched_writes_of_a_group_make_one_call(
    runtime: Runtime, commits: list[int]
) -> None:
    writes = GroupCommit(runtime.session_factory)
    calls: list[list[str]] = []
    batch = add_many(calls)
    emails = [f"b{number}@example.com" for number in range(8)]

    results = await asyncio.gather(
        *(writes.run_batched(batch, email) for email in emails), writes.run(add("plain@x.org"))
    )

    # Each caller gets its own item's result; the items went to the write in one call.
    assert results == [email.upper() for email in emails] + ["plain@x.org"]
    assert calls == [emails]
    assert await stored(runtime) == {*emails, "plain@x.org"}
    assert len(commits) == 1


async def test_a_failing_batch_is_retried_item_by_item(
    runtime: Runtime, commits: list[int]
) -> None:
    writes = GroupCommit(runtime.session_factory)
    calls: list[list[str]] = []
    batch = add_many(calls)
    emails = ["a@example.com", "bad@example.com", "c@example.com"]

    results = await asyncio.gather(
        *(writes.run_batched(batch, email) for email in emails), return_exceptions=True
    )

    assert results[0] == "A@EXAMPLE.COM" and results[2] == "C@EXAMPLE.COM"
    assert isinstance(results[1], RuntimeError)
    assert calls == [emails, ["a@example.com"], ["bad@example.com"], ["c@example.com"]]
    assert await stored(runtime) == {"a@example.com", "c@example.com"}
    assert len(commits) == 2
