"""Deliver composed messages over SMTP and say whether a retry could help.

`SmtpPool` keeps up to `pool_size` connections open between messages, because a fresh
connection (TCP, TLS, EHLO, AUTH) costs several round trips per email. Every outcome
is a value, not an exception, so the dispatcher can decide: Delivered, TemporaryFailure
(4xx, network trouble, timeouts) or PermanentFailure (5xx). Each failure says the stage of
the dialogue it came at, and `verdict` judges it by that stage (app.mail.replies): a 535 to
AUTH is the sender's problem, a 550 5.1.1 to RCPT TO the recipient's.

Every message first waits for its turn under the configured sending rates
(`app.mail.ratelimit`): whoever sends through the pool keeps to them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from app.mail.addresses import ascii_domain
from app.mail.ratelimit import Clock, SendRateLimiter, Sleep
from app.mail.replies import Stage, Verdict, judge_reply
from app.mail.smtp_url import SmtpConfig


@dataclass(frozen=True)
class Delivered:
    # The server's reply to DATA, e.g. "250 2.0.0 Ok: queued as 4BqJ3x".
    response: str


@dataclass(frozen=True)
class TemporaryFailure:
    # None when there was no SMTP reply (connection error, timeout).
    code: int | None
    detail: str
    stage: Stage

    @property
    def verdict(self) -> Verdict:
        return judge_reply(self.stage, self.code, self.detail)


@dataclass(frozen=True)
class PermanentFailure:
    code: int
    detail: str
    stage: Stage

    @property
    def verdict(self) -> Verdict:
        return judge_reply(self.stage, self.code, self.detail)


SendOutcome = Delivered | TemporaryFailure | PermanentFailure


class MailSender(Protocol):
    async def send(
        self, *, envelope_from: str, recipient: str, message: bytes, reserved: bool = False
    ) -> SendOutcome:
        """Deliver `message` to `recipient` only; headers never choose recipients.

        `reserved`: `reserve` gave this recipient's domain slot earlier; do not wait again.
        """
        ...

    def reserve(self, recipient: str) -> float:
        """Take the next slot of the recipient's domain under the sending rates; the seconds
        until it comes. Send with `reserved=True` once it has come."""
        ...

    async def close(self) -> None: ...


class _StaleConnection(Exception):
    """A pooled connection turned out to be closed before the server said anything."""


# Network-level failures: no SMTP reply to classify, the connection is unusable.
_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)


def _reply_outcome(code: int, message: str, stage: Stage) -> TemporaryFailure | PermanentFailure:
    # The server's text starts with the enhanced status code ("5.1.1 ...") when it
    # sends one, so keeping it verbatim keeps that code in the detail.
    detail = f"{code} {message}".strip()
    if code >= 500:
        return PermanentFailure(code=code, detail=detail, stage=stage)
    return TemporaryFailure(code=code, detail=detail, stage=stage)


class SmtpPool:
    """A small pool of aiosmtplib connections shared by concurrent `send` calls."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._config = config
        self._pace = SendRateLimiter(
            per_second=config.rate_per_second,
            domain_per_minute=config.domain_rate_per_minute,
            domain_rates_per_minute=config.domain_rates_per_minute,
            clock=clock,
            sleep=sleep,
        )
        # Most recently used first: the connection least likely to have idled out.
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(config.pool_size)
        self._closed = False
        # Each command already has config.timeout; this caps connect + TLS + AUTH +
        # MAIL/RCPT/DATA and one reconnect together, so nothing can hang forever.
        self._deadline = config.timeout * 6

    def reserve(self, recipient: str) -> float:
        return self._pace.reserve(envelope_address(recipient)[0])

    async def send(
        self, *, envelope_from: str, recipient: str, message: bytes, reserved: bool = False
    ) -> SendOutcome:
        """Deliver to `recipient`; ValueError for an address that cannot go on the wire."""
        if self._closed:
            raise RuntimeError("SmtpPool is closed")
        envelope_from, utf8_from = envelope_address(envelope_from)
        recipient, utf8_to = envelope_address(recipient)
        utf8 = utf8_from or utf8_to
        # Before taking a connection slot, and outside the deadline: waiting for a turn is
        # not the server being slow.
        await self._pace.acquire(recipient, domain_reserved=reserved)
        if self._closed:
            raise RuntimeError("SmtpPool is closed")
        async with self._slots:
            try:
                async with asyncio.timeout(self._deadline):
                    while self._idle:
                        client = self._idle.pop()
                        if not client.is_connected:
                            client.close()
                            continue
                        try:
                            return await self._deliver(
                                client, envelope_from, recipient, message, reused=True, utf8=utf8
                            )
                        except _StaleConnection:
                            # The server dropped it while idle; the message never
                            # reached it, so a fresh connection is safe to try.
                            break
                    client = await self._connect()
                    return await self._deliver(
                        client, envelope_from, recipient, message, reused=False, utf8=utf8
                    )
            except aiosmtplib.SMTPResponseException as exc:
                # Refused while connecting: greeting, EHLO, STARTTLS or AUTH.
                return _reply_outcome(exc.code, exc.message, Stage.CONNECT)
            except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
                return TemporaryFailure(code=None, detail=_describe(exc), stage=Stage.CONNECT)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client in idle))

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.implicit_tls,
            # None upgrades when the server offers STARTTLS, True requires it, False never
            # tries; it must be False alongside implicit TLS.
            start_tls=False if config.implicit_tls else config.starttls,
            timeout=config.timeout,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        return client

    async def _deliver(
        self,
        client: aiosmtplib.SMTP,
        envelope_from: str,
        recipient: str,
        message: bytes,
        *,
        reused: bool,
        utf8: bool,
    ) -> SendOutcome:
        """One transaction on `client`, which goes back to the pool or is closed."""
        keep = False
        stage = Stage.MAIL
        try:
            try:
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()  # now, so that the extensions below are known
                options = [f"SIZE={len(message)}"] if client.supports_extension("size") else []
                if utf8:
                    if not client.supports_extension("smtputf8"):
                        keep = True  # nothing was sent on it: the connection is as good
                        raise SmtpUtf8Unsupported(
                            "the SMTP server does not offer SMTPUTF8, which an address with "
                            "a non-ASCII local part needs"
                        )
                    options.append("SMTPUTF8")
                encoding = "utf-8" if utf8 else "ascii"
                await client.mail(envelope_from, options=options, encoding=encoding)
                stage = Stage.RCPT
                await client.rcpt(recipient, encoding=encoding)
                stage = Stage.DATA
                response = await client.data(message)
            except aiosmtplib.SMTPResponseException as exc:
                if reused and stage == Stage.MAIL and exc.code == 421:
                    # "421 closing connection" to the first command on an idle
                    # connection is the server's idle timeout, not about this message.
                    raise _StaleConnection from exc
                keep = await _reset(client)
                return _reply_outcome(exc.code, exc.message, stage)
            except aiosmtplib.SMTPServerDisconnected as exc:
                if reused and stage == Stage.MAIL:
                    raise _StaleConnection from exc
                return _no_reply(stage, exc)
            except _CONNECTION_ERRORS as exc:
                return _no_reply(stage, exc)
            keep = True
            return Delivered(response=str(response))
        finally:
            # Cancellation (the overall deadline) and any surprise also land here with
            # keep False: a connection in an unknown state never goes back.
            if keep and not self._closed and client.is_connected:
                self._idle.append(client)
            else:
                client.close()


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refusal so the connection can be reused; False if that fails."""
    if not client.is_connected:
        return False
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
        return False
    return True


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
        pass
    finally:
        client.close()


class SmtpUtf8Unsupported(ValueError):
    """The address needs SMTPUTF8 and the server does not offer it: the message cannot go."""


def envelope_address(address: str) -> tuple[str, bool]:
    """`address` as it goes on the envelope, its domain in punycode, and whether its local
    part needs SMTPUTF8. ValueError for an address that cannot go on the wire."""
    # The envelope is what actually routes mail; a CR/LF here would be SMTP injection.
    if not address or "@" not in address or any(ord(ch) < 33 or ord(ch) == 127 for ch in address):
        raise ValueError(f"invalid envelope address {address!r}")
    local, _, domain = address.rpartition("@")
    if not local:
        raise ValueError(f"invalid envelope address {address!r}")
    return f"{local}@{ascii_domain(domain)}", not local.isascii()


def _no_reply(stage: Stage, exc: BaseException) -> TemporaryFailure:
    detail = f"during {stage.upper()}: {_describe(exc)}"
    return TemporaryFailure(code=None, detail=detail, stage=stage)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
