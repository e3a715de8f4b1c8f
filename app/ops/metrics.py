"""Prometheus metrics: counters the code moves, and outbox gauges read at scrape time.

Counters and the histogram live in the process's default registry, so each process reports
what it did (a worker its sends, an API process its webhooks). The outbox gauges come from
one grouped query per scrape of `GET /metrics` and never sit in the default registry: a
worker's own metrics server would otherwise report them as zero.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.mail.sender import PermanentFailure, SendOutcome, TemporaryFailure
from app.models import MessageStatus
from app.ops.repository import OutboxSnapshot
from app.statuses import EventClass, EventKind

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

WEBHOOK_OUTCOMES = (
    "accepted",
    "queued",
    "duplicate",
    "ignored",
    "unmapped",
    "rejected_signature",
    "too_large",
    "invalid",
    "error",
)
_OUTCOME_BY_STATUS = {401: "rejected_signature", 413: "too_large", 422: "invalid"}
# The `status` of a 200 answer (IntakeResult or DeliveryIgnored) is its outcome.
_ANSWERED = frozenset(("accepted", "queued", "duplicate", "ignored", "unmapped"))
SMTP_ERROR_CLASSES = ("temporary", "permanent", "connection")

WEBHOOKS = Counter(
    "aftersale_webhooks",
    "Webhook deliveries answered, by source (aftersale, shopify, woocommerce) and outcome",
    ["source", "outcome"],
)
SEND_DURATION = Histogram(
    "aftersale_send_duration_seconds",
    "Time to hand one message to the SMTP server, including waiting for the sending rate",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180),
)
SMTP_ERRORS = Counter(
    "aftersale_smtp_errors",
    "Failed SMTP deliveries: temporary (4xx), permanent (5xx), connection (no reply)",
    ["class"],
)
SENDING_PAUSED = Gauge(
    "aftersale_sending_paused",
    "1 while this worker has paused sending after sender-side SMTP failures (auth, sender, "
    "connection), 0 otherwise",
)
SENDER_PAUSES = Counter(
    "aftersale_sender_pauses",
    "Times this worker paused sending after a run of sender-side SMTP failures",
)
TRACKING_EVENTS = Counter(
    "aftersale_tracking_events",
    "Opens, clicks and survey answers stored, by kind and by class as first classified",
    ["kind", "class"],
)
COUPON_POOL_EMPTY = Counter(
    "aftersale_coupon_pool_empty",
    "Messages of a coupon rule that found no free code in their pool (skipped or sent without)",
    ["pool"],
)
# Every series exists from the start, at 0, so `rate()` and `increase()` see the first event.
for error_class in SMTP_ERROR_CLASSES:
    SMTP_ERRORS.labels(error_class)
for event_kind in EventKind:
    for event_class in EventClass:
        TRACKING_EVENTS.labels(event_kind.value, event_class.value)


def count_webhook(source: str, outcome: str) -> None:
    WEBHOOKS.labels(source, outcome).inc()


def observe_send(outcome: SendOutcome, *, seconds: float) -> None:
    """Record one `MailSender.send` call: its duration and, if it failed, the failure class."""
    SEND_DURATION.observe(seconds)
    if isinstance(outcome, PermanentFailure):
        SMTP_ERRORS.labels("permanent").inc()
    elif isinstance(outcome, TemporaryFailure):
        SMTP_ERRORS.labels("temporary" if outcome.code is not None else "connection").inc()


def observe_sender_pause(*, paused: bool) -> None:
    SENDING_PAUSED.set(1 if paused else 0)
    if paused:
        SENDER_PAUSES.inc()


def count_tracking_event(kind: str, event_class: str) -> None:
    TRACKING_EVENTS.labels(kind, event_class).inc()


def count_coupon_pool_empty(pool: str) -> None:
    COUPON_POOL_EMPTY.labels(pool).inc()


class OutboxCollector(Collector):
    """The gauges of one outbox snapshot; `None` (the database did not answer) gives only
    `aftersale_outbox_query_ok 0`, so an alert can tell "no data" from "all is well"."""

    def __init__(self, snapshot: OutboxSnapshot | None, *, now: datetime) -> None:
        self._snapshot = snapshot
        self._now = now

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        yield GaugeMetricFamily(
            "aftersale_outbox_query_ok",
            "1 when the outbox gauges below were read from the database at this scrape",
            value=0 if snapshot is None else 1,
        )
        if snapshot is None:
            return
        messages = GaugeMetricFamily(
            "aftersale_messages", "Messages in the outbox, by status", labels=["status"]
        )
        counts = {status.value: 0 for status in MessageStatus} | dict(snapshot.by_status)
        for status, count in sorted(counts.items()):
            messages.add_metric([status], count)
        yield messages
        yield GaugeMetricFamily(
            "aftersale_queue_depth",
            "Messages due now and waiting for a worker (what the next claims would take)",
            value=snapshot.due,
        )
        yield GaugeMetricFamily(
            "aftersale_sending_paused_workers",
            "Workers whose sending is paused now after sender-side SMTP failures (see /readyz)",
            value=len(snapshot.sender_pauses),
        )
        oldest = snapshot.oldest_due_at
        yield GaugeMetricFamily(
            "aftersale_oldest_due_message_age_seconds",
            "How long the longest-waiting due message has been due; 0 when none is",
            value=0 if oldest is None else max(0.0, (self._now - oldest).total_seconds()),
        )
        yield GaugeMetricFamily(
            "aftersale_intake_queued",
            "Webhook deliveries stored and waiting for a worker to apply them "
            "(AFTERSALE_INTAKE_MODE=queued)",
            value=snapshot.intake_queued,
        )
        oldest = snapshot.oldest_queued_at
        yield GaugeMetricFamily(
            "aftersale_intake_queued_age_seconds",
            "How long the oldest queued webhook delivery has waited; 0 when none does",
            value=0 if oldest is None else max(0.0, (self._now - oldest).total_seconds()),
        )


def exposition(snapshot: OutboxSnapshot | None, *, now: datetime) -> bytes:
    """The text format: this process's counters, then the outbox gauges."""
    outbox = CollectorRegistry(auto_describe=False)
    outbox.register(OutboxCollector(snapshot, now=now))
    # Two expositions joined are one: every family carries its own HELP and TYPE lines.
    return generate_latest(REGISTRY) + generate_latest(outbox)


def start_worker_metrics_server(settings: Settings) -> WSGIServer | None:
    """Serve a worker process's counters (sends, SMTP errors) on WORKER_METRICS_PORT.

    A worker has no HTTP API; this plain, unauthenticated server (a daemon thread) is its
    only exposition, so it listens on WORKER_METRICS_HOST, loopback unless set otherwise.
    """
    if not settings.worker_metrics_port:
        return None
    server, _ = start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    log.info("worker metrics on %s:%d", settings.worker_metrics_host, settings.worker_metrics_port)
    return server


class WebhookMetricsMiddleware:
    """Count each webhook delivery by source and outcome, in one place for every intake.

    The outcome is the answer's: 401 rejected_signature, 413 too_large, 422 invalid, a 200's
    JSON `status` (accepted, duplicate, ignored, unmapped), anything else error.
    """

    # The outcome is in the first bytes of a 200; bigger answers are not read further.
    _MAX_BODY = 4096

    def __init__(self, app: ASGIApp, *, sources: Mapping[str, str]) -> None:
        self.app = app
        self._sources = dict(sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = self._sources.get(scope["path"]) if scope["type"] == "http" else None
        if source is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status = 0
        body = b""

        async def watch(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and len(body) < self._MAX_BODY:
                body += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            count_webhook(source, _outcome(status, body))


def _outcome(status: int, body: bytes) -> str:
    if status != 200:
        return _OUTCOME_BY_STATUS.get(status, "error")
    try:
        answered = json.loads(body).get("status")
    except (ValueError, AttributeError):
        return "error"
    return answered if answered in _ANSWERED else "error"


def init_webhook_series(sources: Mapping[str, str]) -> None:
    """Every source × outcome series at 0, like the series above."""
    for source in sources.values():
        for outcome in WEBHOOK_OUTCOMES:
            WEBHOOKS.labels(source, outcome)
