"""Development SMTP capture: accept every message and keep it as an .eml file.

With no AFTERSALE_SMTP_URL in development, the sender talks to this server instead of
the real world, and the admin UI lists the outbox with `list_captured`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# Only names this module could have written; anything else is refused.
_CAPTURED_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8,32}\.eml")
# Enough for headers: listing must not read whole messages with attachments.
_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class CapturedMail:
    name: str
    received_at: datetime
    from_: str
    to: str
    subject: str
    size: int


class _OutboxHandler:
    def __init__(self, outbox_dir: Path) -> None:
        self._outbox_dir = outbox_dir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogateescape")
        # File writes block; keep the capture server's event loop free for other clients.
        await asyncio.to_thread(_write_captured, self._outbox_dir, raw)
        return "250 2.0.0 OK: captured"


class MailCapture:
    """An aiosmtpd server in its own thread writing every message to `outbox_dir`.

    `start()` and `stop()` block briefly (thread start/join); from async code call them
    with `await asyncio.to_thread(capture.start)`.
    """

    def __init__(self, *, host: str, port: int, outbox_dir: Path) -> None:
        self._host = host
        self._port = port
        self._outbox_dir = outbox_dir
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            return
        self._outbox_dir.mkdir(parents=True, exist_ok=True)
        controller = Controller(
            _OutboxHandler(self._outbox_dir),
            hostname=self._host,
            port=self._port,
            server_hostname="aftersale-capture",
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


def _write_captured(outbox_dir: Path, raw: bytes) -> Path:
    name = f"{datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)}-{secrets.token_hex(8)}.eml"
    final = outbox_dir / name
    # Written under a hidden name and renamed, so a listing never sees half a message.
    partial = outbox_dir / f".{name}.part"
    partial.write_bytes(raw)
    os.replace(partial, final)
    return final


def list_captured(outbox_dir: Path, *, limit: int = 100) -> list[CapturedMail]:
    """The newest `limit` captured messages, newest first."""
    if not outbox_dir.is_dir():
        return []
    # The timestamp prefix makes name order arrival order.
    names = sorted(
        (entry.name for entry in os.scandir(outbox_dir) if _CAPTURED_NAME.fullmatch(entry.name)),
        reverse=True,
    )[: max(limit, 0)]
    captured: list[CapturedMail] = []
    for name in names:
        path = outbox_dir / name
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(_HEADER_BYTES)
        except FileNotFoundError:
            continue  # deleted between listing and reading
        headers = BytesHeaderParser(policy=policy.default).parsebytes(head)
        captured.append(
            CapturedMail(
                name=name,
                received_at=datetime.strptime(name.split("-", 1)[0], _TIMESTAMP_FORMAT).replace(
                    tzinfo=UTC
                ),
                from_=_header(headers.get("From")),
                to=_header(headers.get("To")),
                subject=_header(headers.get("Subject")),
                size=size,
            )
        )
    return captured


def read_captured(outbox_dir: Path, name: str) -> bytes:
    """The raw bytes of one captured message; FileNotFoundError for any other name."""
    if not _CAPTURED_NAME.fullmatch(name):
        raise FileNotFoundError(name)
    path = outbox_dir / name
    if path.resolve().parent != outbox_dir.resolve() or not path.is_file():
        raise FileNotFoundError(name)
    return path.read_bytes()


def _header(value: object) -> str:
    # policy.default decodes RFC 2047, so this is what a mail client would show.
    return "" if value is None else " ".join(str(value).split())
