"""`aftersale intake replay ID|--all`: map and ingest failed deliveries again, with the
current code and rules, each in its own transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TextIO

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.intake import replay, repository
from app.intake.service import Outcome
from app.rules.loader import RuleSet, load_rules

EXIT_OK = 0
EXIT_STILL_FAILING = 1
EXIT_NOT_FOUND = 2  # also: the rules cannot be loaded, so nothing was replayed


def replay_command(
    *,
    settings: Settings,
    failure_id: int | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """Replay one failure, or every open one when `failure_id` is None; one line each.

    0 when it went through (or had before: a replay is never applied twice), 1 when one still
    fails (its error is brought up to date), 2 when there is no such failure.
    """
    rules = load_rules(settings.rules_dir, bounds=settings.rules_bounds)
    if rules.errors:
        for error in rules.errors:
            print(error, file=stderr)
        print(f"aftersale intake replay: {len(rules.errors)} error(s) in the rules", file=stderr)
        return EXIT_NOT_FOUND
    return asyncio.run(
        _replay(
            settings,
            failure_id,
            rules=rules,
            clock=clock or SystemClock(),
            stdout=stdout,
            stderr=stderr,
        )
    )


async def _replay(
    settings: Settings,
    failure_id: int | None,
    *,
    rules: RuleSet,
    clock: Clock,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        ids: Sequence[int]
        if failure_id is None:
            async with transaction(factory) as session:
                ids = await repository.open_failure_ids(session)
            if not ids:
                print("no open intake failures", file=stdout)
                return EXIT_OK
        else:
            ids = [failure_id]
        code = EXIT_OK
        for current in ids:
            async with transaction(factory) as session:
                outcome = await replay.replay_failure(
                    session, failure_id=current, rules=rules, settings=settings, now=clock.now()
                )
            if outcome is None:
                print(f"intake failure {current}: not found", file=stderr)
                code = max(code, EXIT_NOT_FOUND)
            elif outcome.status == "unmapped":
                print(f"intake failure {current}: still failing: {outcome.reason}", file=stderr)
                code = max(code, EXIT_STILL_FAILING)
            else:
                print(f"intake failure {current}: {_went(outcome)}", file=stdout)
        return code
    finally:
        await engine.dispose()


def _went(outcome: Outcome) -> str:
    if outcome.status == "duplicate":
        return f"already {outcome.reason}"
    if outcome.status == "ignored":
        return f"replayed: ignored ({outcome.reason})"
    result = outcome.result
    assert result is not None
    return (
        f"replayed: accepted, {result.messages_planned} message(s) planned, "
        f"{result.messages_cancelled} cancelled"
    )
