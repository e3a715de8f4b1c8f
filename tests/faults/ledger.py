"""What the outbox says was sent against what the SMTP server received, message by message.

Every fault test ends with a ledger: `lost` are messages the outbox records as sent whose
Message-ID never arrived, and messages that never arrived although the outbox has not given
them up (not failed, skipped, cancelled...: still to send, or stuck); `duplicates` are mails
received beyond one per message (matched by recipient: each test gives every message its own
address, since a retry is composed anew, with a new Message-ID).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from app.models import Customer, Message, MessageStatus
from app.runtime import Runtime
from tests.smtp_sink import SmtpSink

# A message in one of these states has not been given up: it must arrive (or be on its way).
_NOT_GIVEN_UP = {MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.SENT}


@dataclass(frozen=True)
class Ledger:
    messages: int
    statuses: dict[str, int]
    received: int
    # Outbox ids recorded `sent` whose Message-ID never arrived: the outbox would be lying.
    recorded_not_received: list[int]
    # Outbox ids still to send (or stuck `sending`) whose recipient got nothing.
    undelivered: list[int]
    duplicates: int
    # Received Message-IDs that no outbox row records (sent, then not recorded: a retry's twin).
    unrecorded: int

    @property
    def lost(self) -> int:
        return len(self.recorded_not_received) + len(self.undelivered)

    def __str__(self) -> str:
        return (
            f"lost: {self.lost}, duplicates: {self.duplicates} "
            f"({self.messages} messages {self.statuses}, {self.received} mails received, "
            f"{self.unrecorded} not recorded)"
        )


async def take_ledger(runtime: Runtime, sink: SmtpSink) -> Ledger:
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(Message.id, Message.status, Message.smtp_message_id, Customer.email).join(
                    Customer, Customer.id == Message.customer_id
                )
            )
        ).all()
    received_ids = Counter(sink.message_ids())
    per_recipient = Counter(
        address.lower() for mail in sink.received for address in mail.recipients
    )
    recorded_ids = {row.smtp_message_id for row in rows if row.smtp_message_id}
    recorded_not_received = [
        row.id
        for row in rows
        if row.status == MessageStatus.SENT and received_ids[row.smtp_message_id or ""] == 0
    ]
    undelivered = [
        row.id
        for row in rows
        if row.status in _NOT_GIVEN_UP
        and row.id not in recorded_not_received
        and per_recipient[(row.email or "").lower()] == 0
    ]
    return Ledger(
        messages=len(rows),
        statuses=dict(Counter(str(row.status) for row in rows)),
        received=len(sink.received),
        recorded_not_received=recorded_not_received,
        undelivered=undelivered,
        duplicates=sum(number - 1 for number in per_recipient.values() if number > 1),
        unrecorded=sum(
            n for message_id, n in received_ids.items() if message_id not in recorded_ids
        ),
    )
