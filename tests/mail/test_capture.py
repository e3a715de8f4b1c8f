from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.mail.capture import MailCapture, list_captured, read_captured
from app.mail.compose import compose_message, message_bytes
from app.mail.sender import Delivered, SmtpPool
from app.mail.smtp_url import parse_smtp_url
from app.mail.templates import RenderedEmail


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def capture(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    port = free_port()
    outbox = tmp_path / "outbox"
    mail_capture = MailCapture(host="127.0.0.1", port=port, outbox_dir=outbox)
    await asyncio.to_thread(mail_capture.start)
    try:
        yield port, outbox
    finally:
        await asyncio.to_thread(mail_capture.stop)


def message(subject: str, to_name: str = "Анна Иванова") -> bytes:
    msg, _ = compose_message(
        rendered=RenderedEmail(subject=subject, text="Hello\n", html="<p>Hello</p>"),
        from_name="Tea & Co",
        from_address="shop@example.com",
        to_name=to_name,
        to_address="anna@example.org",
        message_id_domain="example.com",
        now=datetime.now(UTC),
    )
    return message_bytes(msg)


async def test_captures_messages_and_lists_them_newest_first(capture: tuple[int, Path]) -> None:
    port, outbox = capture
    pool = SmtpPool(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=off&pool_size=1&timeout=5"))
    raw_first = message("Спасибо за заказ №1")
    try:
        for raw in (raw_first, message("Second")):
            outcome = await pool.send(
                envelope_from="shop@example.com", recipient="anna@example.org", message=raw
            )
            assert isinstance(outcome, Delivered)
            assert outcome.response.startswith("250")
    finally:
        await pool.close()

    captured = await asyncio.to_thread(list_captured, outbox)
    assert [mail.subject for mail in captured] == ["Second", "Спасибо за заказ №1"]
    newest = captured[0]
    assert newest.from_ == "Tea & Co <shop@example.com>"
    assert newest.to == "Анна Иванова <anna@example.org>"
    assert newest.name.endswith(".eml")
    assert newest.received_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - newest.received_at) < timedelta(minutes=1)
    oldest = captured[1]
    stored = read_captured(outbox, oldest.name)
    assert oldest.size == len(stored)
    # The DATA bytes as sent: no envelope headers added.
    assert stored == raw_first
    assert b"X-Envelope-To" not in stored
    assert [mail.subject for mail in list_captured(outbox, limit=1)] == ["Second"]


def test_list_captured_on_a_missing_folder(tmp_path: Path) -> None:
    assert list_captured(tmp_path / "nothing") == []


def test_list_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".20240101T000000.000000Z-0123456789abcdef.eml.part").write_bytes(b"x")
    assert list_captured(tmp_path) == []


@pytest.mark.parametrize(
    "name",
    [
        "../secret.eml",
        "/etc/passwd",
        "..",
        "sub/20240101T000000.000000Z-0123456789abcdef.eml",
        "20240101T000000.000000Z-0123456789abcdef.txt",
        "notes.eml",
        "",
    ],
)
def test_read_captured_refuses_other_names(tmp_path: Path, name: str) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (tmp_path / "secret.eml").write_bytes(b"secret")
    (outbox / "notes.eml").write_bytes(b"notes")
    with pytest.raises(FileNotFoundError):
        read_captured(outbox, name)


def test_read_captured_refuses_symlinks_out_of_the_folder(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (tmp_path / "secret.eml").write_bytes(b"secret")
    name = "20240101T000000.000000Z-0123456789abcdef.eml"
    (outbox / name).symlink_to(tmp_path / "secret.eml")
    with pytest.raises(FileNotFoundError):
        read_captured(outbox, name)


def test_read_captured_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_captured(tmp_path, "20240101T000000.000000Z-0123456789abcdef.eml")
