from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.mail.sender import SmtpPool
from app.mail.templates import TemplateRenderer
from app.outbox.dispatcher import Dispatcher
from app.rules.source import RulesSource
from app.runtime import Runtime


def use_rules(runtime: Runtime, folder: Path, text: str) -> None:
    """Run with the rules in `text` (written to `folder/rules.yaml`) instead of the defaults."""
    (folder / "rules.yaml").write_text(text)
    runtime.rules = RulesSource(folder)
    assert runtime.rules.reload(), runtime.rules.errors


def make_dispatcher(runtime: Runtime, worker_id: str) -> Dispatcher:
    settings = runtime.settings
    return Dispatcher(
        runtime=runtime,
        sender=SmtpPool(settings.smtp),
        renderer=TemplateRenderer(settings.templates_dir, default_locale=settings.default_locale),
        worker_id=worker_id,
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-a")
    yield worker
    await worker.sender.close()
