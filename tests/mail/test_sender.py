from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from app.mail.replies import Stage, Verdict
from app.mail.sender import (
    Delivered,
    MailSender,
    PermanentFailure,
    SmtpPool,
    TemporaryFailure,
)
from app.mail.smtp_url import SmtpConfig, parse_smtp_url

MESSAGE = b"From: shop@example.com\r\nTo: anna@example.org\r\nSubject: Hi\r\n\r\nHello\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smtp_config(port: int, *, pool_size: int = 2, timeout: float = 5.0) -> SmtpConfig:
    return parse_smtp_url(
        f"smtp://127.0.0.1:{port}?starttls=off&pool_size={pool_size}&timeout={timeout}"
    )


@dataclass
class RecordingHandler:
    """Accepts mail, except recipients listed in `refuse` get that reply."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    servers: list[Any] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.add(session.peer)
        self.servers.append(server)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued as ABC123"


@pytest.fixture
async def smtpd() -> AsyncIterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(controller.start)
    try:
        yield controller, handler
    finally:
        await asyncio.to_thread(controller.stop)


async def test_pool_implements_protocol(smtpd: tuple[Controller, RecordingHandler]) -> None:
    controller, _ = smtpd
    sender: MailSender = SmtpPool(smtp_config(controller.port))
    await sender.close()


async def test_delivers_to_the_envelope_recipient_only(
    smtpd: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtpd
    pool = SmtpPool(smtp_config(controller.port))
    try:
        message = MESSAGE.replace(b"\r\n\r\n", b"\r\nBcc: evil@example.com\r\n\r\n")
        outcome = await pool.send(
            envelope_from="bounce@example.com", recipient="anna@example.org", message=message
        )
    finally:
        await pool.close()

    assert outcome == Delivered(response="250 2.0.0 Ok: queued as ABC123")
    [(mail_from, recipients, content)] = handler.messages
    assert mail_from == "bounce@example.com"
    assert recipients == ["anna@example.org"]
    assert b"Hello" in content


async def test_connections_are_reused(smtpd: tuple[Controller, RecordingHandler]) -> None:
    controller, handler = smtpd
    pool = SmtpPool(smtp_config(controller.port, pool_size=2))
    try:
        for index in range(5):
            outcome = await pool.send(
                envelope_from="shop@example.com", recipient=f"c{index}@example.org", message=MESSAGE
            )
            assert isinstance(outcome, Delivered)
    finally:
        await pool.close()

    assert len(handler.messages) == 5
    assert len(handler.peers) == 1


async def test_concurrency_is_capped_by_pool_size(
    smtpd: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtpd
    pool = SmtpPool(smtp_config(controller.port, pool_size=3))
    try:
        outcomes = await asyncio.gather(
            *(
                pool.send(
                    envelope_from="shop@example.com",
                    recipient=f"c{index}@example.org",
                    message=MESSAGE,
                )
                for index in range(20)
            )
        )
    finally:
        await pool.close()

    assert all(isinstance(outcome, Delivered) for outcome in outcomes)
    assert len(handler.messages) == 20
    assert 1 <= len(handler.peers) <= 3


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "451 4.3.0 try later",
            TemporaryFailure(code=451, detail="451 4.3.0 try later", stage=Stage.RCPT),
        ),
        (
            "550 5.1.1 no such user",
            PermanentFailure(code=550, detail="550 5.1.1 no such user", stage=Stage.RCPT),
        ),
    ],
)
async def test_refusals_are_classified_and_connection_survives(
    smtpd: tuple[Controller, RecordingHandler], reply: str, expected: Any
) -> None:
    controller, handler = smtpd
    handler.refuse["bad@example.org"] = reply
    pool = SmtpPool(smtp_config(controller.port, pool_size=1))
    try:
        refused = await pool.send(
            envelope_from="shop@example.com", recipient="bad@example.org", message=MESSAGE
        )
        delivered = await pool.send(
            envelope_from="shop@example.com", recipient="good@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert refused == expected
    assert isinstance(delivered, Delivered)
    # RSET after the refusal kept the same connection usable.
    assert len(handler.peers) == 1
    assert [recipients for _, recipients, _ in handler.messages] == [["good@example.org"]]


async def test_server_closing_an_idle_connection_costs_nothing(
    smtpd: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtpd
    pool = SmtpPool(smtp_config(controller.port, pool_size=1))
    try:
        first = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
        # The server times the idle connection out.
        server = handler.servers[-1]
        controller.loop.call_soon_threadsafe(server.transport.close)
        await asyncio.sleep(0.1)
        second = await pool.send(
            envelope_from="shop@example.com", recipient="b@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert isinstance(first, Delivered)
    assert isinstance(second, Delivered)
    assert len(handler.peers) == 2


ScriptedReply = Callable[[int, bytes], Awaitable[bytes | None]]


@pytest.fixture
async def scripted_server() -> AsyncIterator[Callable[[ScriptedReply], Awaitable[int]]]:
    """A minimal SMTP server whose replies a test scripts per (connection, command)."""
    servers: list[asyncio.Server] = []
    connections = 0

    async def start(reply_for: ScriptedReply) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            number = connections
            writer.write(b"220 fake ESMTP\r\n")
            in_data = False
            try:
                while line := await reader.readline():
                    if in_data:
                        if line != b".\r\n":
                            continue
                        in_data = False
                        command = b"END-DATA"
                    else:
                        command = line.split(b" ")[0].strip().upper()
                    reply = await reply_for(number, command)
                    if reply is None:
                        break  # hang up without answering
                    if command == b"DATA" and reply.startswith(b"354"):
                        in_data = True
                    writer.write(reply)
                    await writer.drain()
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()


DEFAULT_REPLIES = {
    b"EHLO": b"250-fake\r\n250 8BITMIME\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"DATA": b"354 go ahead\r\n",
    b"END-DATA": b"250 queued\r\n",
    b"RSET": b"250 OK\r\n",
    b"QUIT": b"221 bye\r\n",
}


async def test_retries_once_when_a_reused_connection_was_dropped(
    scripted_server: Callable[[ScriptedReply], Awaitable[int]],
) -> None:
    mails: list[int] = []

    async def reply(connection: int, command: bytes) -> bytes | None:
        if command == b"MAIL":
            mails.append(connection)
            if connection == 1 and len(mails) == 2:
                return None  # dropped between messages, before any reply
        return DEFAULT_REPLIES.get(command, b"500 what\r\n")

    port = await scripted_server(reply)
    pool = SmtpPool(smtp_config(port, pool_size=1))
    try:
        first = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
        second = await pool.send(
            envelope_from="shop@example.com", recipient="b@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert first == Delivered(response="250 queued")
    assert second == Delivered(response="250 queued")
    assert mails == [1, 1, 2]


async def test_no_retry_once_the_message_may_have_been_sent(
    scripted_server: Callable[[ScriptedReply], Awaitable[int]],
) -> None:
    connections: set[int] = set()

    async def reply(connection: int, command: bytes) -> bytes | None:
        connections.add(connection)
        if command == b"END-DATA" and connection == 1 and len(ends) == 1:
            return None  # message data sent, reply lost: resending could duplicate it
        if command == b"END-DATA":
            ends.append(connection)
        return DEFAULT_REPLIES.get(command, b"500 what\r\n")

    ends: list[int] = []
    port = await scripted_server(reply)
    pool = SmtpPool(smtp_config(port, pool_size=1))
    try:
        first = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
        second = await pool.send(
            envelope_from="shop@example.com", recipient="b@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert isinstance(first, Delivered)
    assert isinstance(second, TemporaryFailure)
    assert second.code is None
    assert connections == {1}


async def test_421_on_a_reused_connection_is_retried(
    scripted_server: Callable[[ScriptedReply], Awaitable[int]],
) -> None:
    mails: list[int] = []

    async def reply(connection: int, command: bytes) -> bytes | None:
        if command == b"MAIL":
            mails.append(connection)
            if connection == 1 and len(mails) == 2:
                return b"421 4.4.2 Error: timeout exceeded\r\n"
        return DEFAULT_REPLIES.get(command, b"500 what\r\n")

    port = await scripted_server(reply)
    pool = SmtpPool(smtp_config(port, pool_size=1))
    try:
        outcomes = [
            await pool.send(
                envelope_from="shop@example.com", recipient=f"{n}@example.org", message=MESSAGE
            )
            for n in range(2)
        ]
    finally:
        await pool.close()

    assert all(isinstance(outcome, Delivered) for outcome in outcomes)
    assert mails == [1, 1, 2]


async def test_data_refusal_is_classified(
    scripted_server: Callable[[ScriptedReply], Awaitable[int]],
) -> None:
    async def reply(connection: int, command: bytes) -> bytes | None:
        if command == b"END-DATA":
            return b"554 5.7.1 message rejected as spam\r\n"
        return DEFAULT_REPLIES.get(command, b"500 what\r\n")

    port = await scripted_server(reply)
    pool = SmtpPool(smtp_config(port))
    try:
        outcome = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert outcome == PermanentFailure(
        code=554, detail="554 5.7.1 message rejected as spam", stage=Stage.DATA
    )
    assert outcome.verdict == Verdict.REJECTED


async def test_temporary_greeting_refusal(
    scripted_server: Callable[[ScriptedReply], Awaitable[int]],
) -> None:
    async def reply(connection: int, command: bytes) -> bytes | None:
        if command == b"EHLO":
            return b"421 4.7.0 too many connections\r\n"
        return DEFAULT_REPLIES.get(command, b"500 what\r\n")

    port = await scripted_server(reply)
    pool = SmtpPool(smtp_config(port))
    try:
        outcome = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert isinstance(outcome, TemporaryFailure)
    assert outcome.code == 421
    assert "4.7.0" in outcome.detail
    # aiosmtplib sends EHLO with the first command when it need not log in first.
    assert outcome.stage in (Stage.CONNECT, Stage.MAIL)
    assert outcome.verdict == Verdict.SENDER


async def test_hanging_server_times_out_quickly() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, then say nothing until the client gives up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = SmtpPool(smtp_config(port, timeout=0.3))
    try:
        started = time.monotonic()
        outcome = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
        elapsed = time.monotonic() - started
    finally:
        await pool.close()
        server.close()

    assert isinstance(outcome, TemporaryFailure)
    assert outcome.code is None
    assert elapsed < 2.0


async def test_connection_refused_is_temporary() -> None:
    pool = SmtpPool(smtp_config(free_port(), timeout=1.0))
    try:
        outcome = await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
    finally:
        await pool.close()

    assert isinstance(outcome, TemporaryFailure)
    assert outcome.code is None


@pytest.mark.parametrize(
    "address", ["a@example.org\r\nRCPT TO:<x@y>", "no-at-sign", "", "a b@example.org"]
)
async def test_envelope_addresses_are_validated(address: str) -> None:
    pool = SmtpPool(smtp_config(free_port()))
    with pytest.raises(ValueError):
        await pool.send(envelope_from="shop@example.com", recipient=address, message=MESSAGE)
    with pytest.raises(ValueError):
        await pool.send(envelope_from=address, recipient="a@example.org", message=MESSAGE)
    await pool.close()


async def test_send_after_close_is_refused(smtpd: tuple[Controller, RecordingHandler]) -> None:
    controller, _ = smtpd
    pool = SmtpPool(smtp_config(controller.port))
    await pool.close()
    with pytest.raises(RuntimeError):
        await pool.send(
            envelope_from="shop@example.com", recipient="a@example.org", message=MESSAGE
        )
