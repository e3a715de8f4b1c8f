"""`aftersale health` against real `aftersale serve` processes, as Docker runs it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.smtp_sink import SmtpSink, free_port
from tests.test_processes import AFTERSALE, process, service_env, wait_for, wait_http

pytestmark = pytest.mark.slow


def health(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AFTERSALE, "health", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=30
    )


async def test_worker_is_healthy_while_it_runs_and_not_after(
    engine: object, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    heartbeat = tmp_path / "var" / "worker.heartbeat"
    heartbeat.parent.mkdir()
    env = service_env(
        database_url,
        AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off",
        AFTERSALE_WORKER_HEARTBEAT_FILE=str(heartbeat),
    )
    # A worker serves no HTTP: nothing listens where the probe looks first.
    nothing_there = f"http://127.0.0.1:{free_port()}/healthz"
    with process("serve", "--role", "worker", env=env, tmp_path=tmp_path) as worker:
        await wait_for(heartbeat.exists)
        alive = health(env, "--url", nothing_there, cwd=tmp_path)
        assert alive.returncode == 0, alive.stderr
        assert alive.stdout.startswith(f"healthy: no HTTP server on {nothing_there}; ")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    time.sleep(2)
    gone = health(env, "--url", nothing_there, "--max-age", "1", cwd=tmp_path)
    assert gone.returncode == 1
    [line] = gone.stderr.splitlines()
    assert line.startswith(f"unhealthy: no HTTP server on {nothing_there}, and worker heartbeat ")
    assert line.endswith(" s old (max 1 s)"), line


async def test_api_is_healthy_by_its_healthz_and_not_after(
    engine: object, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(database_url)  # no heartbeat file: the answer alone decides
    url = f"http://127.0.0.1:{port}/healthz"
    with process("serve", "--role", "api", "--port", str(port), env=env, tmp_path=tmp_path) as api:
        await wait_http(f"http://127.0.0.1:{port}")
        alive = health(env, "--url", url, cwd=tmp_path)
        assert (alive.returncode, alive.stdout) == (0, f"healthy: {url} answered HTTP 200\n")
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=20)
    gone = health(env, "--url", url, cwd=tmp_path)
    assert gone.returncode == 1
    assert (
        gone.stderr == f"unhealthy: no HTTP server on {url}, and no worker heartbeat file is set\n"
    )
