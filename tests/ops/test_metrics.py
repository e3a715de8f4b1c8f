"""`GET /metrics`: what Prometheus scrapes after webhooks, sends and opens."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.config import Settings
from app.mail.replies import Stage
from app.mail.sender import Delivered, PermanentFailure, TemporaryFailure
from app.models import Message
from app.ops.metrics import exposition, observe_send, start_worker_metrics_server
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event, signed_headers
from tests.ops.conftest import METRICS_TOKEN, Visitor
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink, free_port

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels; fails on text Prometheus rejects."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-m")
    yield worker
    await worker.sender.close()


async def test_webhooks_and_a_send_move_the_counters(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    before = await scrape(client)
    body = order_created(order_id="m-1")
    assert (await post_event(client, body)).json()["status"] == "accepted"
    assert (await post_event(client, body)).json()["status"] == "duplicate"
    forged = b'{"id": "x"}'
    headers = signed_headers(forged, secret="not-the-secret-0123456789")
    assert (
        await client.post("/webhooks/orders", content=forged, headers=headers)
    ).status_code == 401
    unreadable = b'{"id": "evt-bad", "type": "order.created"}'
    invalid = await client.post(
        "/webhooks/orders", content=unreadable, headers=signed_headers(unreadable)
    )
    assert invalid.status_code == 422
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 1
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    webhook = "aftersale_webhooks_total"
    assert moved(webhook, source="aftersale", outcome="accepted") == 1
    assert moved(webhook, source="aftersale", outcome="duplicate") == 1
    assert moved(webhook, source="aftersale", outcome="rejected_signature") == 1
    assert moved(webhook, source="aftersale", outcome="invalid") == 1
    assert moved(webhook, source="shopify", outcome="accepted") == 0
    assert (webhook, (("outcome", "too_large"), ("source", "woocommerce"))) in after
    assert moved("aftersale_send_duration_seconds_count") == 1
    assert moved("aftersale_smtp_errors_total", **{"class": "permanent"}) == 0
    # Read from the database at the scrape, not counted.
    assert value(after, "aftersale_messages", status="sent") == 1
    assert value(after, "aftersale_messages", status="scheduled") == 0
    assert value(after, "aftersale_queue_depth") == 0
    assert value(after, "aftersale_oldest_due_message_age_seconds") == 0
    assert value(after, "aftersale_outbox_query_ok") == 1


async def test_a_refused_recipient_counts_as_a_permanent_smtp_error(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    before = await scrape(client)
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 no such user"
    await post_event(client, order_created(order_id="m-2"))
    assert (await dispatcher.run_once()).outcomes == {"failed": 1}
    after = await scrape(client)
    errors = "aftersale_smtp_errors_total"
    assert (
        value(after, errors, **{"class": "permanent"})
        - value(before, errors, **{"class": "permanent"})
        == 1
    )
    assert value(after, "aftersale_messages", status="failed") == 1


def test_smtp_errors_are_counted_by_class() -> None:
    before = parse(exposition(None, now=NOW).decode())
    observe_send(Delivered("250 ok"), seconds=0.2)
    observe_send(TemporaryFailure(451, "451 4.7.1 later", Stage.RCPT), seconds=0.3)
    observe_send(TemporaryFailure(None, "connection refused", Stage.CONNECT), seconds=0.01)
    observe_send(PermanentFailure(550, "550 5.1.1 unknown", Stage.RCPT), seconds=0.4)
    after = parse(exposition(None, now=NOW).decode())
    for error_class in ("temporary", "connection", "permanent"):
        name, labels = "aftersale_smtp_errors_total", {"class": error_class}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    count = "aftersale_send_duration_seconds_count"
    assert value(after, count) - value(before, count) == 4


async def test_queue_depth_and_oldest_due_age_follow_the_clock(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await post_event(client, order_created(order_id="m-3"))
    async with runtime.session_factory() as session:
        due_at = (await session.execute(select(Message.next_attempt_at))).scalar_one()
    clock.current = max(clock.current, due_at)
    clock.advance(minutes=10)
    samples = await scrape(client)
    assert value(samples, "aftersale_queue_depth") == 1
    assert value(samples, "aftersale_messages", status="scheduled") == 1
    expected = (clock.current - due_at).total_seconds()
    assert value(samples, "aftersale_oldest_due_message_age_seconds") == pytest.approx(expected)
    assert expected >= 600


async def test_an_open_is_counted_by_class(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created(order_id="m-4"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    html = smtp_sink.received[-1].part("text/html")
    [pixel] = re.findall(r"https?://[^\"']+/o/[A-Za-z0-9_-]+", html)
    before = await scrape(client)
    assert (await client.get(urlsplit(pixel).path)).status_code == 200
    after = await scrape(client)
    name = "aftersale_tracking_events_total"
    opens = sum(
        value(after, name, kind="open", **{"class": c})
        - value(before, name, kind="open", **{"class": c})
        for c in ("human", "machine", "unknown")
    )
    assert opens == 1


async def test_metrics_need_the_token_from_other_hosts(visitor: Visitor) -> None:
    remote = visitor("203.0.113.50")
    missing = await remote.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await remote.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = await remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200
    parse(right.text)
    assert (await visitor("::1").get("/metrics")).status_code == 200


async def test_without_a_token_metrics_are_for_localhost_only(
    visitor: Visitor, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"metrics_token": None})
    remote = visitor("203.0.113.50")
    refused = await remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert refused.status_code == 403


def test_without_the_database_only_the_process_metrics_are_served() -> None:
    samples = parse(exposition(None, now=NOW).decode())
    assert value(samples, "aftersale_outbox_query_ok") == 0
    assert not any(name == "aftersale_queue_depth" for name, _ in samples)
    assert any(name == "aftersale_send_duration_seconds_count" for name, _ in samples)


def test_a_worker_serves_its_own_metrics_when_given_a_port(settings: Settings) -> None:
    assert start_worker_metrics_server(settings) is None  # off by default
    port = free_port()
    server = start_worker_metrics_server(settings.model_copy(update={"worker_metrics_port": port}))
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            samples = parse(answer.read().decode())
    finally:
        server.shutdown()
        server.server_close()
    assert any(name == "aftersale_send_duration_seconds_count" for name, _ in samples)
    # The outbox gauges come from the API's /metrics only, never as zeros from a worker.
    assert not any(name == "aftersale_queue_depth" for name, _ in samples)


def test_a_production_metrics_token_must_be_a_real_secret() -> None:
    from tests.test_config import production

    assert production(metrics_token="a-real-metrics-token-0123456789").metrics_token
    assert production(metrics_token=" ").metrics_token is None  # blank is unset
    with pytest.raises(ValueError, match="AFTERSALE_METRICS_TOKEN"):
        production(metrics_token="changeme")
