"""`aftersale messages cancel|fail ID`: the operator API's actions, from a shell."""

from __future__ import annotations

import asyncio
from typing import TextIO

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.outbox.service import MessageConflict, MessageNotFound, OperatorAction, end_message


def end_command(
    *,
    settings: Settings,
    message_id: int,
    action: OperatorAction,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """0 when the message is now cancelled or failed; 1 with the reason when it cannot be."""
    try:
        status, reason = asyncio.run(_end(settings, message_id, action, clock or SystemClock()))
    except (MessageNotFound, MessageConflict) as exc:
        print(f"aftersale messages {action}: {exc}", file=stderr)
        return 1
    print(f"message {message_id}: {status} ({reason})", file=stdout)
    return 0


async def _end(
    settings: Settings, message_id: int, action: OperatorAction, clock: Clock
) -> tuple[str, str | None]:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            message, _, _ = await end_message(
                session, message_id=message_id, action=action, now=clock.now()
            )
            return message.status, message.status_reason
    finally:
        await engine.dispose()
