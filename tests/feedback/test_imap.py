"""The IMAP job's fetch-apply-delete path, with the mailbox (an outside party) replaced by a
list of messages. imaplib's network part is not exercised here."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.feedback.imap import parse_imap_url, poll_mailbox
from app.models import MailFeedbackEvent, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.feedback.conftest import send_one
from tests.feedback.samples import dsn
from tests.smtp_sink import SmtpSink


class ListMailbox:
    def __init__(self, messages: list[tuple[bytes, bytes]]) -> None:
        self.messages = messages
        self.deleted: list[bytes] = []

    def fetch(self, limit: int) -> list[tuple[bytes, bytes]]:
        return self.messages[:limit]

    def delete(self, uids: Sequence[bytes]) -> None:
        self.deleted.extend(uids)
        self.messages = [item for item in self.messages if item[0] not in uids]


def test_the_imap_url_names_server_account_and_folder() -> None:
    config = parse_imap_url("imaps://bounces%40shop.de:p%40ss@imap.example.net/Bounces%2FDSN")
    assert (config.host, config.port, config.username, config.password, config.mailbox) == (
        "imap.example.net",
        993,
        "bounces@shop.de",
        "p@ss",
        "Bounces/DSN",
    )
    assert "p@ss" not in repr(config)
    with pytest.raises(ValueError, match="scheme must be imaps"):
        parse_imap_url("pop3://u:p@host/INBOX")


async def test_reports_are_applied_once_and_deleted_the_rest_too(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    bounce = dsn(sent.received.raw, to=sent.received.envelope_from)
    chatter = b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot a report\r\n"
    mailbox = ListMailbox([(b"11", bounce), (b"12", chatter), (b"13", bounce)])
    applied = await poll_mailbox(runtime, mailbox=mailbox)
    assert (applied.recorded, applied.duplicates, applied.suppressed) == (1, 1, 1)
    assert mailbox.deleted == [b"11", b"12", b"13"]
    async with runtime.session_factory() as session:
        events = (await session.execute(select(MailFeedbackEvent))).scalars().all()
        suppressions = (await session.execute(select(Suppression))).scalars().all()
    assert [(e.message_id, e.kind) for e in events] == [(sent.message_id, "hard_bounce")]
    assert [s.reason for s in suppressions] == ["hard_bounce"]
    assert (await poll_mailbox(runtime, mailbox=mailbox)).recorded == 0
