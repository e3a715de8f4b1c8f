"""Log format (text or one JSON object a line), the request id, and the access log.

Nothing personal goes into a log line: the access log names the route (`/u/{token}`), never
the path or query string (tokens encode addresses; `?email=` filters hold them), and no
client address. Code that logs must do the same: ids and counts, not addresses or names.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()  # as ASGI gives header names
# Letters, digits and a few separators, so a client's id cannot break a log line or header
# (no spaces, quotes or `@`, so no address passes as an id).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,64}")
# Requests that orchestrators and Prometheus make every few seconds: logged at DEBUG.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("aftersale.access")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
    "request_id",
}

LogFormat = Literal["text", "json"]

# What would end a log line, or hide the rest of it, in a terminal or a line-based reader:
# ASCII controls and the Unicode line breaks that str.splitlines and many viewers honour.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with every line-breaking character written as its escape (`\\n`, `\\u2028`):
    a value from a request (an event id, a topic) can then never start a forged log line."""
    return _LINE_BREAKING.sub(_escape_one, text)


def _escape_one(found: re.Match[str]) -> str:
    char = found.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id and `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = _record_request_id(record)
        if current is not None:
            entry["request_id"] = current
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # JSON escapes the ASCII controls itself; the Unicode line breaks it leaves as they are.
        return escape_controls(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """The classic line, with the request id at its end when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The message only: a traceback below it is many lines by design.
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current = _record_request_id(record)
        return f"{line} [request_id={current}]" if current is not None else line


def _record_request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) else request_id.get()


# INFO records of other libraries that are routine, not news, logged at DEBUG instead:
# APScheduler's two lines per job run (the dispatcher runs every few seconds: ~85 lines a
# minute idle), and aiosmtpd's session lines, which name peers and recipient addresses
# (the development capture, the inbound bounce listener).
ROUTINE_LOGGERS = ("apscheduler.executors.default", "mail.log")


def configure_logging(log_format: LogFormat, *, level: int | str = logging.INFO) -> None:
    """Send every logger's records at `level` and above to stderr in `log_format`, unless the
    root logger already has a handler (a test runner's, or an embedding program's)."""
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # aiosqlite logs each call with its SQL parameters (addresses, names) at DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(level, logging.INFO))
    for name in ROUTINE_LOGGERS:
        demote_info_to_debug(logging.getLogger(name))


def demote_info_to_debug(logger: logging.Logger) -> None:
    """Log `logger`'s INFO records as DEBUG: shown only where DEBUG is enabled. Warnings and
    errors (a job that failed or ran late) keep their level."""
    if not any(isinstance(each, _DemoteInfo) for each in logger.filters):
        logger.addFilter(_DemoteInfo())


class _DemoteInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the record through at INFO; DEBUG must pass its threshold too.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _SAFE_REQUEST_ID.fullmatch(value) else None


class RequestIdMiddleware:
    """Give each request an id (the client's `X-Request-ID` if safe, else a new one) that
    every log line of the request carries and the response returns; log the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == _REQUEST_ID_KEY
            ),
            None,
        )
        current = valid_request_id(given) or uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = current
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log_access(scope, status, time.perf_counter() - started)
            request_id.reset(token)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    route = getattr(scope.get("route"), "path", None) or "-"  # "-": no route matched
    access_log.log(
        logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
        "%s %s %d",
        scope["method"],
        route,
        status,
        extra={
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
