"""What an operator may do to one message: cancel it, or fail it, before it goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message, MessageStatus
from app.outbox import repository

OperatorAction = Literal["cancel", "fail"]

_ENDS: dict[OperatorAction, tuple[MessageStatus, str]] = {
    "cancel": (MessageStatus.CANCELLED, "cancelled_by_operator"),
    "fail": (MessageStatus.FAILED, "failed_by_operator"),
}


class MessageNotFound(Exception):
    pass


class MessageConflict(Exception):
    """The message is not in a state the action applies to; the text says why."""


async def end_message(
    session: AsyncSession, *, message_id: int, action: OperatorAction, now: datetime
) -> tuple[Message, str | None, str | None]:
    """Cancel or fail a message: a `scheduled` or `paused` one (cancel only), or a `sending`
    one whose lease has expired, i.e. whose worker died or got stuck (say, on a template that
    never finished rendering) and which would otherwise be taken and tried again. A message a
    worker holds a live lease on is refused: it may be on the wire right now.

    Returns the message with its address and order id, as `repository.get_message`."""
    found = await repository.get_message(session, message_id)
    if found is None:
        raise MessageNotFound(f"no message {message_id}")
    message = found[0]
    status, reason = _ENDS[action]
    if message.status == status and (action == "cancel" or message.status_reason == reason):
        return found  # done already: a repeated request changes nothing
    waiting = (MessageStatus.SCHEDULED, MessageStatus.PAUSED)
    if message.status in waiting and action == "cancel":
        message.status = status
        message.status_reason = reason
        message.updated_at = now
        await session.flush()
        return found
    if message.status == MessageStatus.SENDING:
        if message.next_attempt_at > now:
            raise MessageConflict(
                f"message is being sent (its worker's lease runs until "
                f"{message.next_attempt_at.isoformat()}); it can be ended once the lease "
                "has expired"
            )
        ended = await repository.end_abandoned_message(
            session,
            message_id=message_id,
            status=status,
            reason=reason,
            detail=f"{reason} after the sending lease expired",
            now=now,
        )
        if not ended:
            raise MessageConflict("a worker has just taken the message again; try once more")
        await session.refresh(message)
        return found
    allowed = (
        "scheduled, paused, or sending with an expired lease"
        if action == "cancel"
        else ("sending with an expired lease")
    )
    raise MessageConflict(f"message is {message.status}; {action} applies to {allowed}")


async def send_now(
    session: AsyncSession, *, message_id: int, now: datetime
) -> tuple[Message, str | None, str | None]:
    """Make a `scheduled` message due now: the dispatcher's next run takes it, and decides
    on it as on any due message (suppressions, caps, its rule's checks still apply).

    A retry waiting for its next attempt is tried now too. Any other status is refused with
    MessageConflict: a paused message waits for its rule, the rest are under way or ended.
    Returns the message with its address and order id, as `repository.get_message`."""
    found = await repository.get_message(session, message_id)
    if found is None:
        raise MessageNotFound(f"no message {message_id}")
    message = found[0]
    if message.status != MessageStatus.SCHEDULED:
        raise MessageConflict(f"message is {message.status}; send now applies to scheduled")
    if message.send_at > now:
        message.send_at = now
    message.next_attempt_at = min(message.next_attempt_at, now)
    message.updated_at = now
    await session.flush()
    return found
