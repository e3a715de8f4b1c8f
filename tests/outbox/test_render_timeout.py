"""A slow template fails its own message (`render_timeout`) while the rest of the batch is
sent and the HTTP app answers; the message is not tried again."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.config import ROOT
from app.models import Message, MessageAttempt
from app.runtime import Runtime
from app.worker import Worker
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

# Each step is allowed; all of them would take about a minute.
SLOW = (
    "{% for i in range(1000) %}{% for j in range(50) %}"
    "{{ (range(2000)|list|join)|length }}{% endfor %}{% endfor %}"
)


async def test_slow_template_fails_alone_and_health_answers_meanwhile(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates" / "email", templates)
    slow = templates / "slow" / "en"
    slow.mkdir(parents=True)
    (slow / "subject.txt").write_text("Hi")
    (slow / "body.html").write_text(f"<p>{SLOW}</p>")
    runtime.settings = runtime.settings.model_copy(
        update={"templates_dir": templates, "render_timeout": 1.0}
    )
    use_rules(
        runtime,
        tmp_path,
        "rules:\n"
        "  - id: slow\n    when: {event: order.created}\n    template: slow\n"
        "  - id: thanks\n    when: {event: order.created}\n    template: thank-you\n",
    )
    for number in range(3):
        await post_event(
            client,
            order_created(
                order_id=f"10{number}", customer_id=f"c-{number}", email=f"c{number}@example.org"
            ),
        )
    worker = Worker(runtime)  # the renderer and its limit as `serve` builds them
    dispatcher = worker.dispatcher
    try:
        batch = asyncio.create_task(dispatcher.run_once())
        health = []
        while not batch.done():
            started = time.perf_counter()
            response = await client.get("/healthz")
            health.append(time.perf_counter() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.02)
        report = await batch
        # The three slow renders ran at the same time as these requests, for a second each.
        assert len(health) >= 20
        assert max(health) < 0.25, max(health)
        assert report.outcomes == {"failed": 3, "sent": 3}
        assert sorted(mail.recipients[0] for mail in smtp_sink.received) == [
            "c0@example.org",
            "c1@example.org",
            "c2@example.org",
        ]
        async with runtime.session_factory() as session:
            rows = (
                await session.execute(select(Message).where(Message.rule_id == "slow"))
            ).scalars()
            slow_messages = list(rows)
            attempts = list(
                (await session.execute(select(MessageAttempt.outcome, MessageAttempt.detail))).all()
            )
        assert [(m.status, m.status_reason) for m in slow_messages] == [
            ("failed", "render_timeout")
        ] * 3
        assert all("rendering took longer than 1 s" in (m.last_error or "") for m in slow_messages)
        assert sum(outcome == "failed" for outcome, _ in attempts) == 3
        # Final: the next rounds do not take them again.
        assert (await dispatcher.drain()).claimed == 0
    finally:
        await dispatcher.sender.close()
