"""JSON log lines, the request id, and no personal data or secrets in any log record."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from httpx import AsyncClient
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.mail.unsubscribe import make_token
from app.models import Customer, Suppression
from app.ops.logging import (
    ROUTINE_LOGGERS,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    request_id,
    valid_request_id,
)
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import TEST_API_KEY, TEST_WEBHOOK_SECRET, Api
from tests.factories import order_created, post_event
from tests.ops.conftest import METRICS_TOKEN, REVOKED_API_KEY
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

EMAIL = "Private.Person@Example.org"
NAME = "Privatina"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the JSON handler writes, for every logger, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_extras() -> None:
    log = logging.getLogger("aftersale.test")
    record = log.makeRecord(
        log.name, logging.WARNING, __file__, 1, "claimed %d", (3,), None, extra={"batch": 7}
    )
    token = request_id.set("req-1")
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "level": "WARNING",
        "logger": "aftersale.test",
        "message": "claimed 3",
        "request_id": "req-1",
        "batch": 7,
    }
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = log.makeRecord(log.name, logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    assert "RuntimeError: boom" in json.loads(JsonFormatter().format(failed))["exception"]


def test_request_ids_from_clients_must_be_short_and_plain() -> None:
    assert valid_request_id("3f2a-9b:1.x_Y") == "3f2a-9b:1.x_Y"
    assert valid_request_id("a" * 64) == "a" * 64
    for bad in ("a" * 65, "", "has space", "line\nbreak", "anna@example.org", '"quoted"', None):
        assert valid_request_id(bad) is None


async def test_the_request_id_is_returned_and_on_every_line(
    client: AsyncClient, json_lines: io.StringIO
) -> None:
    given = await client.get("/u/not-a-token", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/u/not-a-token", headers={"X-Request-ID": "bad id @ home"})
    assert made.headers["x-request-id"] != "bad id @ home"
    assert len(made.headers["x-request-id"]) == 32
    access = [line for line in lines(json_lines) if line["logger"] == "aftersale.access"]
    assert [line["request_id"] for line in access] == ["abc-123", made.headers["x-request-id"]]
    assert access[0]["route"] == "/u/{token}" and access[0]["status"] == 404
    assert access[0]["message"] == "GET /u/{token} 404"
    assert request_id.get() is None  # nothing leaks out of the request


async def test_no_personal_data_or_secret_reaches_a_log_record(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the production level, for every logger
    caplog.set_level(logging.DEBUG, logger="app")
    caplog.set_level(logging.DEBUG, logger="aftersale")
    settings = runtime.settings
    body = order_created(order_id="p-1", customer_id="c-p", email=EMAIL, first_name=NAME)
    assert (await post_event(client, body)).status_code == 200
    forged = await post_event(client, order_created(), secret="wrong-secret-0123456789")
    assert forged.status_code == 401
    dispatcher: Dispatcher = make_dispatcher(runtime, "worker-log")
    try:
        assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    finally:
        await dispatcher.sender.close()
    listed = await client.get("/api/v1/messages", params={"email": EMAIL}, headers=api.headers)
    assert listed.json()["items"]
    revoked = {"Authorization": f"Bearer {REVOKED_API_KEY}"}
    assert (await client.get("/api/v1/messages", headers=revoked)).status_code == 403
    async with runtime.session_factory() as session:
        customer_id = (
            await session.execute(select(Customer.id).where(Customer.email == EMAIL.lower()))
        ).scalar_one()
    token = make_token(customer_id=customer_id, secrets=settings.unsubscribe_secrets)
    assert (await client.get(f"/u/{token}")).status_code == 200
    assert (await client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")).is_success
    shopify = await client.post(
        "/webhooks/shopify",
        content=b"{}",
        headers={"X-Shopify-Shop-Domain": "shop.example.com", "X-Shopify-Hmac-Sha256": "bad"},
    )
    assert shopify.status_code == 401
    # Erasure, and what is left to see of the customer afterwards.
    assert (await client.delete("/api/v1/customers/c-p", headers=api.headers)).status_code == 200
    await client.get("/api/v1/customers/c-p/export", headers=api.headers)
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    assert caplog.records, "the flow logged nothing: the check below would prove nothing"

    # The test's own HTTP client and SMTP server log what they send and receive; they are
    # not the service.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "mail.log"))]
    formatter = JsonFormatter()
    written = "\n".join(
        formatter.format(record) + repr(record.args) + repr(vars(record)) for record in records
    ).lower()
    forbidden = {
        "address": EMAIL.lower(),
        "name": NAME.lower(),
        "unsubscribe token": token.lower(),
        "API key": TEST_API_KEY.lower(),
        "revoked API key": REVOKED_API_KEY.lower(),
        "webhook secret": TEST_WEBHOOK_SECRET.lower(),
        "metrics token": METRICS_TOKEN.lower(),
        **{
            f"unsubscribe secret {n}": s.lower() for n, s in enumerate(settings.unsubscribe_secrets)
        },
        **{f"tracking secret {n}": s.lower() for n, s in enumerate(settings.tracking_secrets)},
        **{f"survey secret {n}": s.lower() for n, s in enumerate(settings.survey_secrets)},
    }
    assert [what for what, text in forbidden.items() if text in written] == []
    assert "@example.org" not in written


async def test_database_errors_do_not_quote_their_parameters(runtime: Runtime) -> None:
    row = {"email": "quoted@example.org", "reason": "manual"}
    async with runtime.session_factory() as session, session.begin():
        await session.execute(insert(Suppression).values(**row))
    with pytest.raises(IntegrityError) as raised:
        async with runtime.session_factory() as session, session.begin():
            await session.execute(insert(Suppression).values(**row))
    assert "quoted@example.org" not in str(raised.value)


def test_logging_setup_keeps_driver_debug_lines_out(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = logging.getLogger("aiosqlite")
    monkeypatch.setattr(driver, "level", driver.level)  # restored after the test
    configure_logging("json", level=logging.DEBUG)
    # aiosqlite's DEBUG lines carry every SQL parameter.
    assert driver.getEffectiveLevel() == logging.INFO


def test_production_logs_json_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_config import production

    assert production().log_format == "json"
    assert production(log_format="text").log_format == "text"
    monkeypatch.setenv("AFTERSALE_LOG_FORMAT", "text")
    assert production().log_format == "text"
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]


FORGED = "2026-12-07 12:00:00,000 WARNING app.outbox.dispatcher sending paused"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_value_from_a_request_cannot_forge_a_log_line(
    client: AsyncClient, log_format: str
) -> None:
    # An event id with line breaks (ASCII and Unicode) in a signed but invalid body: the
    # intake failure's warning names the delivery by that id.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        for breaker in ("\n", "\r\n", "\u2028", "\x85"):
            body = order_created()
            body["id"] = f"evt-forge{breaker}{FORGED}"
            del body["order"]["currency"]
            response = await post_event(client, body)
            assert response.status_code == 422
    finally:
        root.removeHandler(handler)
    written = stream.getvalue()
    assert "evt-forge" in written
    # Every record is one line, and no line is the forged one (or starts like a record).
    for line in written.splitlines():
        assert not line.startswith("2026-12-07 12:00:00"), line
        if log_format == "json":
            json.loads(line)
    assert sum("evt-forge" in line for line in written.splitlines()) == 4


@pytest.fixture
def routine_lines_demoted() -> Iterator[None]:
    """configure_logging's filters on the routine loggers, taken off after the test."""
    loggers = [logging.getLogger(name) for name in ROUTINE_LOGGERS]
    before = [list(each.filters) for each in loggers]
    configure_logging("text", level="INFO")  # the handler: pytest's, already on the root
    yield
    for each, filters in zip(loggers, before, strict=True):
        each.filters[:] = filters


async def test_scheduler_runs_are_debug_lines(
    routine_lines_demoted: None, caplog: pytest.LogCaptureFixture
) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def tick() -> None:
        return None

    async def run_once() -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(tick, "date")  # at once
        scheduler.start()
        await asyncio.sleep(0.3)
        scheduler.shutdown(wait=False)

    caplog.set_level(logging.INFO)
    await run_once()
    runs = [r for r in caplog.records if r.name == "apscheduler.executors.default"]
    assert runs == []  # ~85 lines a minute at INFO before
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    await run_once()
    runs = [r for r in caplog.records if r.name == "apscheduler.executors.default"]
    assert any("Running job" in r.getMessage() for r in runs)
    assert {r.levelname for r in runs} == {"DEBUG"}


def test_smtp_capture_address_lines_are_debug_and_warnings_stay(
    routine_lines_demoted: None, caplog: pytest.LogCaptureFixture
) -> None:
    aiosmtpd = logging.getLogger("mail.log")  # aiosmtpd's session log
    caplog.set_level(logging.INFO)
    aiosmtpd.info("('127.0.0.1', 40000) recip: %s", EMAIL)
    aiosmtpd.warning("('127.0.0.1', 40000) unrecognised command")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "('127.0.0.1', 40000) unrecognised command")
    ]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    aiosmtpd.info("('127.0.0.1', 40000) recip: %s", EMAIL)
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


def test_log_level_setting_reads_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).log_level == "INFO"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert Settings(_env_file=None).log_level == "DEBUG"  # type: ignore[call-arg]
    monkeypatch.setenv("AFTERSALE_LOG_LEVEL", "warning")  # the prefixed name wins
    assert Settings(_env_file=None).log_level == "WARNING"  # type: ignore[call-arg]
