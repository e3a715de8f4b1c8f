"""The worker role: an APScheduler clock that drives the dispatcher against the outbox.

Jobs live in memory and are re-created at start: the schedule is code, the work is in the
database. Never one job per email.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text

from app.feedback.imap import poll_mailbox
from app.intake.queue import apply_queued
from app.jobs.anchors import plan_anchor_messages
from app.jobs.birthdays import plan_birthday_messages
from app.jobs.lapses import plan_lapse_messages
from app.jobs.missing_rules import reconcile_missing_rules
from app.jobs.raw_retention import expire_raw_payloads
from app.mail.capture import MailCapture
from app.mail.sender import MailSender, SmtpPool
from app.mail.templates import TemplateRenderer
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.rollup import fold_stats, purge_tracking_events

log = logging.getLogger(__name__)

# `aftersale health` allows 60 s by default: a heartbeat missed twice is not yet a failure.
HEARTBEAT_SECONDS = 10.0
# How long `stop` waits for the jobs' runs in flight before cancelling them.
STOP_WAIT_SECONDS = 30.0


def write_heartbeat(path: Path, now: datetime) -> None:
    """Write `now` (ISO 8601, with its offset) to `path`, replacing the file in one step.

    The temporary file is in the same folder, so `os.replace` is an atomic rename: a reader
    (`aftersale health`) sees the previous time or this one, never half a line.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(now.isoformat() + "\n")
    os.replace(temporary, path)


class Heartbeat:
    """A scheduler job that shows this worker alive: event loop, scheduler and database.

    It is a job of its own, never waiting for a drain, so a long backlog does not look dead.
    """

    def __init__(self, runtime: Runtime, path: Path) -> None:
        self.runtime = runtime
        self.path = path
        self._failing = False

    async def beat(self) -> None:
        # Never raises into the scheduler: a missing beat is the signal. Logged once per
        # outage, not every few seconds.
        try:
            async with self.runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            # The wall clock, not runtime.clock: another process compares it with its own.
            await asyncio.to_thread(write_heartbeat, self.path, datetime.now(UTC))
        except Exception:
            if not self._failing:
                log.warning("worker heartbeat stopped: %s not updated", self.path, exc_info=True)
            self._failing = True
            return
        if self._failing:
            log.info("worker heartbeat written again to %s", self.path)
        self._failing = False


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        sender: MailSender | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.heartbeat_seconds = heartbeat_seconds
        self.capture: MailCapture | None = None
        if sender is None and settings.uses_dev_smtp_capture:
            self.capture = MailCapture(
                host=settings.dev_smtp_host,
                port=settings.dev_smtp_port,
                outbox_dir=settings.dev_outbox_dir,
            )
        self.sender = sender or SmtpPool(settings.smtp)
        self.dispatcher = Dispatcher(
            runtime=runtime,
            sender=self.sender,
            renderer=TemplateRenderer(
                settings.templates_dir,
                default_locale=settings.default_locale,
                time_limit=settings.render_timeout,
            ),
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._running: set[asyncio.Task[object]] = set()  # the jobs' runs in flight

    def _tracked(self, job: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        """`job` as the scheduler runs it, known while it runs: `stop` lets it finish."""

        @functools.wraps(job)
        async def run(*args: object, **kwargs: object) -> object:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                return await job(*args, **kwargs)
            finally:
                self._running.discard(task)

        return run

    async def start(self) -> None:
        if self.capture is not None:
            await asyncio.to_thread(self.capture.start)  # waits for its server thread
            log.info(
                "development SMTP capture on %s:%s, saving to %s",
                self.runtime.settings.dev_smtp_host,
                self.runtime.settings.dev_smtp_port,
                self.runtime.settings.dev_outbox_dir,
            )
        self.scheduler.add_job(
            self._tracked(self.dispatcher.drain),
            "interval",
            seconds=self.runtime.settings.dispatch_interval,
            id="dispatch",
            # One drain at a time per process; other processes share the work via SKIP LOCKED.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),  # send what fell due while we were down
        )
        self.scheduler.add_job(
            self._tracked(apply_queued),
            "interval",
            seconds=self.runtime.settings.dispatch_interval,
            args=[self.runtime],
            id="apply-intake-queue",
            # Runs in inline mode too: nothing queued before a switch back is stranded.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),
        )
        self.scheduler.add_job(
            self._tracked(reconcile_missing_rules),
            "interval",
            seconds=self.runtime.settings.rules_poll_interval,
            args=[self.runtime],
            id="reconcile-missing-rules",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._tracked(plan_anchor_messages),
            "interval",
            hours=6,
            args=[self.runtime],
            id="plan-anchors",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),
        )
        self.scheduler.add_job(
            self._tracked(plan_birthday_messages),
            "interval",
            hours=6,
            args=[self.runtime],
            id="plan-birthdays",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),
        )
        self.scheduler.add_job(
            self._tracked(plan_lapse_messages),
            "interval",
            hours=6,
            args=[self.runtime],
            id="plan-lapses",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),
        )
        self.scheduler.add_job(
            self._tracked(fold_stats),
            "interval",
            seconds=self.runtime.settings.stats_rollup_interval,
            args=[self.runtime],
            id="stats-rollup",
            # Workers in other processes that find the run taken skip it (docs/stats.md).
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._tracked(purge_tracking_events),
            "interval",
            hours=1,
            args=[self.runtime],
            id="purge-tracking-events",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._tracked(expire_raw_payloads),
            "interval",
            days=1,
            args=[self.runtime],
            id="expire-raw-payloads",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.runtime.clock.now(),  # a worker restarted daily still runs it
        )
        if self.runtime.settings.bounce_imap_url is not None:
            self.scheduler.add_job(
                self._tracked(poll_mailbox),
                "interval",
                seconds=self.runtime.settings.bounce_imap_interval,
                args=[self.runtime],
                id="bounce-mailbox",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        if self.runtime.settings.worker_heartbeat_file is not None:
            heartbeat = Heartbeat(self.runtime, self.runtime.settings.worker_heartbeat_file)
            self.scheduler.add_job(
                self._tracked(heartbeat.beat),
                "interval",
                seconds=self.heartbeat_seconds,
                id="worker-heartbeat",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),  # healthy as soon as the database answers
            )
        self.scheduler.start()
        log.info("worker %s started", self.dispatcher.worker_id)

    async def stop(self) -> None:
        """Finish the batch in flight, then close connections: SIGTERM loses nothing."""
        # No new runs, then the batch in flight to its end, and only then the shutdown:
        # shutting the scheduler down cancels the jobs running, sends in flight included.
        self.scheduler.pause()
        await self.dispatcher.stop()
        # The other jobs' runs in flight (a queue batch, a planner) finish too: cancelled,
        # each would roll back and the scheduler would log its CancelledError as an error.
        # Bounded, so that SIGTERM still ends a long run. A run submitted just before the
        # pause starts at the first yield.
        await asyncio.sleep(0)
        if self._running:
            await asyncio.wait(set(self._running), timeout=STOP_WAIT_SECONDS)
        self.scheduler.shutdown(wait=False)
        await self.sender.close()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.stop)
        log.info("worker %s stopped", self.dispatcher.worker_id)
