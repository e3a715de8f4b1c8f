"""Bounces and complaints read from a mailbox (BOUNCE_IMAP_URL), for setups whose bounces
land in a mailbox rather than at our inbound listener.

A worker job: every BOUNCE_IMAP_INTERVAL seconds it fetches up to a batch of messages
(stdlib imaplib, in a thread: it blocks), applies each in its own transaction and then
deletes the ones applied. A message whose transaction failed stays for the next run; a
message read twice is harmless (its reports are recorded once).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

from app.feedback.inbound import apply_report_mail
from app.feedback.service import Applied
from app.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 100


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    mailbox: str
    tls: bool


def parse_imap_url(url: str) -> ImapConfig:
    """`imaps://user:password@host[:port]/MAILBOX` (imap:// only for a local test server)."""
    parts = urlsplit(url)
    if parts.scheme not in ("imaps", "imap"):
        raise ValueError("AFTERSALE_BOUNCE_IMAP_URL: scheme must be imaps (or imap)")
    if not parts.hostname or not parts.username or parts.password is None:
        raise ValueError("AFTERSALE_BOUNCE_IMAP_URL: needs user, password and host")
    tls = parts.scheme == "imaps"
    return ImapConfig(
        host=parts.hostname,
        port=parts.port or (993 if tls else 143),
        username=unquote(parts.username),
        password=unquote(parts.password),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        tls=tls,
    )


class Mailbox(Protocol):
    def fetch(self, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` (uid, raw message) pairs."""
        ...

    def delete(self, uids: Sequence[bytes]) -> None: ...


class ImapMailbox:
    """A mailbox over imaplib; each call is one short connection (blocking: run in a thread)."""

    def __init__(self, config: ImapConfig, *, timeout: float = 30) -> None:
        self.config = config
        self.timeout = timeout

    def _connect(self) -> imaplib.IMAP4:
        config = self.config
        client: imaplib.IMAP4
        if config.tls:
            client = imaplib.IMAP4_SSL(config.host, config.port, timeout=self.timeout)
        else:
            client = imaplib.IMAP4(config.host, config.port, timeout=self.timeout)
        client.login(config.username, config.password)
        client.select(f'"{config.mailbox}"')
        return client

    def fetch(self, limit: int) -> list[tuple[bytes, bytes]]:
        client = self._connect()
        try:
            _, data = client.uid("SEARCH", "ALL")
            uids = (data[0] or b"").split()[:limit]
            found = []
            for uid in uids:
                _, parts = client.uid("FETCH", uid.decode(), "(RFC822)")
                raw = next(
                    (part[1] for part in parts if isinstance(part, tuple) and len(part) > 1),
                    None,
                )
                if isinstance(raw, bytes):
                    found.append((uid, raw))
            return found
        finally:
            _logout(client)

    def delete(self, uids: Sequence[bytes]) -> None:
        if not uids:
            return
        client = self._connect()
        try:
            client.uid("STORE", b",".join(uids).decode(), "+FLAGS", r"(\Deleted)")
            client.expunge()
        finally:
            _logout(client)


def _logout(client: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        client.logout()


async def poll_mailbox(runtime: Runtime, *, mailbox: Mailbox | None = None) -> Applied:
    """Fetch, apply and delete one batch of report mail; the worker's IMAP job."""
    if mailbox is None:
        url = runtime.settings.bounce_imap_url
        if url is None:
            return Applied()
        mailbox = ImapMailbox(parse_imap_url(url.get_secret_value()))
    applied = Applied()
    try:
        fetched = await asyncio.to_thread(mailbox.fetch, BATCH)
    except (imaplib.IMAP4.error, OSError) as exc:
        log.warning("bounce mailbox unreachable: %s", type(exc).__name__)
        return applied
    done = []
    for uid, raw in fetched:
        try:
            applied.add(await apply_report_mail(runtime, raw, envelope_recipients=[]))
        except Exception:
            log.exception("a report from the bounce mailbox could not be recorded; kept")
            continue
        done.append(uid)
    if done:
        try:
            await asyncio.to_thread(mailbox.delete, done)
        except (imaplib.IMAP4.error, OSError) as exc:
            # Read again next time: recorded once all the same.
            log.warning("could not delete read reports: %s", type(exc).__name__)
    if fetched:
        log.info(
            "bounce mailbox: %d read, %d recorded, %d suppressed",
            len(fetched),
            applied.recorded,
            applied.suppressed,
        )
    return applied
