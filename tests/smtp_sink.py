"""A real SMTP server (aiosmtpd) for tests: records what arrives, answers what it is told."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        body = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert body is not None, f"no {content_type} part"
        return str(body.get_content())


@dataclass
class SmtpSink:
    """Replies: a callable given the recipient that returns None (accept) or an SMTP reply."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    rcpt_reply: Callable[[str], str | None] = lambda _address: None
    connections: int = 0
    data_delay: float = 0.0  # seconds to stall before answering DATA (a slow server)
    # True for recipients whose DATA is never answered (a hung server); nothing is recorded.
    data_hangs: Callable[[list[str]], bool] = lambda _recipients: False
    # Given the sender: None (accept) or the reply to MAIL FROM, e.g. "550 5.7.1 ...".
    mail_reply: Callable[[str], str | None] = lambda _address: None
    # Given the recipients: None (accept) or the reply after DATA; nothing is recorded.
    data_reply: Callable[[list[str]], str | None] = lambda _recipients: None
    # When set, AUTH (advertised without TLS) accepts only this password: a client that
    # logs in with another gets "535 5.7.8"; one that does not log in is still served.
    password: str | None = None
    # Whether EHLO offers SMTPUTF8 (RFC 6531); read when the sink starts.
    smtputf8: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            enable_SMTPUTF8=self.smtputf8,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        accepted = self.password is None or auth_data.password.decode() == self.password
        return AuthResult(success=accepted, handled=False)

    def message_ids(self) -> list[str]:
        return [str(item.message["Message-ID"]) for item in self.received]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.sink._lock:
            self.sink.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.sink.mail_reply(address)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.sink.rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.data_hangs(list(envelope.rcpt_tos)):
            await asyncio.Event().wait()  # until the client gives up, or the sink stops
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        reply = self.sink.data_reply(list(envelope.rcpt_tos))
        if reply is not None:
            return reply
        with self.sink._lock:
            self.sink.received.append(
                Received(
                    envelope_from=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    raw=envelope.original_content or envelope.content,
                )
            )
        return "250 Message accepted"
