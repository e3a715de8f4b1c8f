"""Real `aftersale serve --role worker` processes, signalled while mail is in flight.

SIGKILL: nothing is lost; the batch the dead worker held is sent by another once its lease
lapses, and only mail that reached the server but was never recorded can repeat.
SIGTERM: the sends in flight finish and are recorded, the rest of the batch is handed back,
the process exits 0, and the next worker sends the rest: nothing lost, nothing twice.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from app.runtime import Runtime
from tests.faults.ledger import take_ledger
from tests.outbox.test_workers import seed_messages, status_counts
from tests.smtp_sink import SmtpSink
from tests.test_processes import process, service_env, wait_for

pytestmark = pytest.mark.slow


def worker_env(database_url: str, smtp_sink: SmtpSink, *, lease_seconds: int) -> dict[str, str]:
    return service_env(
        database_url,
        AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off&pool_size=2",
        AFTERSALE_LEASE_SECONDS=str(lease_seconds),
        AFTERSALE_DISPATCH_BATCH_SIZE="10",
    )


class DataStarts:
    """Counts DATA commands the sink has begun (the sends in flight, with those received)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, _recipients: list[str]) -> bool:
        with self._lock:
            self.count += 1
        return False  # never hang: only counting


async def test_worker_killed_mid_batch_loses_nothing(
    runtime: Runtime, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    await seed_messages(runtime, 30)
    smtp_sink.data_delay = 0.2  # slow enough to kill the worker with mail in flight
    env = worker_env(database_url, smtp_sink, lease_seconds=3)
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as victim:
        await wait_for(lambda: len(smtp_sink.received) >= 3)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    counts = await status_counts(runtime)
    assert counts.get("sending", 0) > 0, counts  # it died holding a batch
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as survivor:

        async def all_sent() -> bool:
            return await status_counts(runtime) == {"sent": 30}

        await wait_for(all_sent, timeout=40)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=20) == 0
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert ledger.lost == 0, ledger
    assert ledger.statuses == {"sent": 30}
    # Only a message whose send finished but was not yet recorded can repeat: at most the
    # messages in flight when the worker died (the SMTP pool size), each one a mail the
    # outbox never recorded.
    assert ledger.duplicates <= 2, ledger
    assert ledger.unrecorded == ledger.duplicates, ledger


async def test_sigterm_finishes_the_sends_in_flight_and_exits_cleanly(
    runtime: Runtime, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    await seed_messages(runtime, 30)
    smtp_sink.data_delay = 0.4  # each send takes a while: SIGTERM lands mid-send
    started = DataStarts()
    smtp_sink.data_hangs = started
    env = worker_env(database_url, smtp_sink, lease_seconds=120)
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as worker:
        # A mail through, and another one begun: the worker is mid-batch and mid-send.
        await wait_for(lambda: len(smtp_sink.received) >= 1 and started.count > 2)
        in_flight = started.count - len(smtp_sink.received)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    assert in_flight >= 1
    # Every send begun was finished, and recorded; nothing was left `sending`.
    assert started.count == len(smtp_sink.received)
    ledger = await take_ledger(runtime, smtp_sink)
    print(f"after SIGTERM with {in_flight} in flight: {ledger.statuses}")
    assert (ledger.recorded_not_received, ledger.unrecorded) == ([], 0), ledger
    assert "sending" not in ledger.statuses, ledger
    assert ledger.statuses["sent"] == len(smtp_sink.received) < 30
    assert ledger.statuses["sent"] + ledger.statuses["scheduled"] == 30
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "finishing messages in flight" in logs and "Traceback" not in logs, logs

    # The messages handed back go with the next worker, none of them twice.
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as successor:

        async def all_sent() -> bool:
            return await status_counts(runtime) == {"sent": 30}

        await wait_for(all_sent, timeout=40)
        successor.send_signal(signal.SIGTERM)
        assert successor.wait(timeout=20) == 0
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates, ledger.unrecorded) == (0, 0, 0), ledger
