"""The tracking tests' mail set-up (a marketing mail with several tracked links, a client at a
chosen address) and a dispatcher that sends through the real SMTP sink."""

from collections.abc import AsyncIterator

import pytest

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.outbox.conftest import make_dispatcher
from tests.tracking.conftest import client, settings

__all__ = ["client", "dispatcher", "settings"]


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-export")
    yield worker
    await worker.sender.close()
