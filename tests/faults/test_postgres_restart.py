"""PostgreSQL restarted while a worker is mid-batch: the worker lives on, nothing is lost.

Opt-in: it restarts the whole local cluster, which breaks every other connection to it (other
people's test runs on a shared server). Run it with AFTERSALE_FAULT_PG_RESTART=1 against a
local PostgreSQL (AFTERSALE_TEST_DATABASE_URL) on a machine that is yours alone; it needs to
be allowed to run `pg_ctlcluster` (root or the postgres user).

Mail that reached the server while the database was away cannot be recorded, so it is sent
again once its lease lapses: duplicates are counted, at most the one batch in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.runtime import Runtime
from tests.faults.ledger import take_ledger
from tests.outbox.test_workers import seed_messages, status_counts
from tests.smtp_sink import SmtpSink
from tests.test_processes import process, service_env, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("AFTERSALE_FAULT_PG_RESTART") != "1",
        reason="restarts the PostgreSQL cluster: opt in with AFTERSALE_FAULT_PG_RESTART=1",
    ),
]
RESTART = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart"
BATCH_SIZE = 10


def restart_postgres() -> float:
    """Restart the local cluster; the seconds it took."""
    started = time.monotonic()
    subprocess.run(RESTART, shell=True, check=True, timeout=120, capture_output=True)
    return time.monotonic() - started


async def test_postgres_restart_mid_batch_loses_nothing(
    runtime: Runtime, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("needs AFTERSALE_TEST_DATABASE_URL pointing at a local PostgreSQL")
    await seed_messages(runtime, 40)
    smtp_sink.data_delay = 0.2  # slow enough that the restart lands mid-batch
    env = service_env(
        database_url,
        AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off&pool_size=2",
        AFTERSALE_LEASE_SECONDS="3",
        AFTERSALE_DISPATCH_BATCH_SIZE=str(BATCH_SIZE),
    )
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as worker:
        await wait_for(lambda: len(smtp_sink.received) >= 5)
        took = await asyncio.to_thread(restart_postgres)
        # This process's pooled connections died too: start afresh.
        await runtime.engine.dispose()
        assert worker.poll() is None, "the worker died with the database"

        async def all_sent() -> bool:
            try:
                return await status_counts(runtime) == {"sent": 40}
            except Exception:  # the database is still coming back
                await runtime.engine.dispose()
                return False

        await wait_for(all_sent, timeout=90)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    ledger = await take_ledger(runtime, smtp_sink)
    print(f"PostgreSQL restarted in {took:.1f} s mid-batch: {ledger}")
    assert ledger.lost == 0, ledger
    assert ledger.statuses == {"sent": 40}
    # A repeat is a mail sent while the database was away, so never recorded.
    assert ledger.unrecorded == ledger.duplicates <= BATCH_SIZE, ledger
