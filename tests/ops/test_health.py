"""`aftersale health` (the Docker HEALTHCHECK) and the worker heartbeat it reads.

The decision is checked against a real HTTP server on a socket and real files; the heartbeat
job against the test database, and against one that refuses connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.cli import check_health, main
from app.db import create_engine
from app.runtime import Runtime
from app.worker import Heartbeat, Worker, write_heartbeat
from tests.outbox.test_workers import seed_messages, status_counts
from tests.smtp_sink import SmtpSink, free_port
from tests.test_processes import wait_for


class HealthServer(ThreadingHTTPServer):
    """Answers every GET with `status`, after `delay` seconds."""

    daemon_threads = True
    block_on_close = False  # a handler still sleeping must not hold up the test's end
    status = 200
    delay = 0.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/healthz"


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[HealthServer]:
    server = HealthServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A URL where nothing listens, as in a worker's container."""
    return f"http://127.0.0.1:{free_port()}/healthz"


def beat_at(path: Path, seconds_ago: float) -> Path:
    write_heartbeat(path, datetime.now(UTC) - timedelta(seconds=seconds_ago))
    return path


def test_http_200_is_healthy(http_server: HealthServer, tmp_path: Path) -> None:
    healthy, reason = check_health(url=http_server.url, heartbeat=tmp_path / "missing", max_age=60)
    assert (healthy, reason) == (True, f"{http_server.url} answered HTTP 200")
    assert http_server.paths == ["/healthz"]


def test_http_500_is_unhealthy_even_with_a_fresh_heartbeat(
    http_server: HealthServer, tmp_path: Path
) -> None:
    http_server.status = 500
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 1)
    healthy, reason = check_health(url=http_server.url, heartbeat=heartbeat, max_age=60)
    assert (healthy, reason) == (False, f"{http_server.url} answered HTTP 500")


def test_a_server_that_does_not_answer_in_time_is_unhealthy(
    http_server: HealthServer, tmp_path: Path
) -> None:
    http_server.delay = 1.0
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 1)
    started = time.monotonic()
    healthy, reason = check_health(
        url=http_server.url, heartbeat=heartbeat, max_age=60, timeout=0.2
    )
    assert time.monotonic() - started < 0.9
    assert (healthy, reason) == (False, f"{http_server.url} did not answer: timed out")


def test_nothing_listening_and_a_fresh_heartbeat_is_healthy(
    refused_url: str, tmp_path: Path
) -> None:
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 5)
    healthy, reason = check_health(url=refused_url, heartbeat=heartbeat, max_age=60)
    assert healthy
    assert reason == f"no HTTP server on {refused_url}; worker heartbeat {heartbeat} is 5 s old"


def test_nothing_listening_and_a_stale_heartbeat_is_unhealthy(
    refused_url: str, tmp_path: Path
) -> None:
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 312)
    healthy, reason = check_health(url=refused_url, heartbeat=heartbeat, max_age=60)
    assert not healthy
    assert reason == (
        f"no HTTP server on {refused_url}, and worker heartbeat {heartbeat} is 312 s old (max 60 s)"
    )


def test_nothing_listening_and_no_usable_heartbeat_is_unhealthy(
    refused_url: str, tmp_path: Path
) -> None:
    nothing = f"no HTTP server on {refused_url}"
    missing = tmp_path / "worker.heartbeat"
    assert check_health(url=refused_url, heartbeat=missing, max_age=60) == (
        False,
        f"{nothing}, and worker heartbeat {missing} does not exist",
    )
    assert check_health(url=refused_url, heartbeat=None, max_age=60) == (
        False,
        f"{nothing}, and no worker heartbeat file is set",
    )
    garbage = tmp_path / "garbage"
    garbage.write_text("yesterday\n")
    healthy, reason = check_health(url=refused_url, heartbeat=garbage, max_age=60)
    assert not healthy
    assert reason.startswith(f"{nothing}, and worker heartbeat {garbage} is unreadable: ")


def test_command_prints_one_line_and_exits_0_or_1(
    refused_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 2)
    args = ["health", "--url", refused_url, "--heartbeat", str(heartbeat)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (
        f"healthy: no HTTP server on {refused_url}; worker heartbeat {heartbeat} is 2 s old\n",
        "",
    )
    assert main([*args, "--max-age", "1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"unhealthy: no HTTP server on {refused_url}, and worker heartbeat {heartbeat} is "
        "2 s old (max 1 s)\n"
    )


def test_command_reads_the_heartbeat_file_from_the_setting(
    refused_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 1)
    monkeypatch.chdir(tmp_path)
    # From the environment, as the Docker image sets it.
    monkeypatch.setenv("AFTERSALE_WORKER_HEARTBEAT_FILE", str(heartbeat))
    assert main(["health", "--url", refused_url]) == 0
    # Empty: off, so a worker has nothing to show.
    monkeypatch.setenv("AFTERSALE_WORKER_HEARTBEAT_FILE", "")
    assert main(["health", "--url", refused_url]) == 1
    assert "no worker heartbeat file is set" in capsys.readouterr().err
    # Not in the environment: from .env, as every other setting.
    monkeypatch.delenv("AFTERSALE_WORKER_HEARTBEAT_FILE")
    (tmp_path / ".env").write_text(f"AFTERSALE_WORKER_HEARTBEAT_FILE={heartbeat}\n")
    assert main(["health", "--url", refused_url]) == 0
    assert str(heartbeat) in capsys.readouterr().out


def test_command_loads_neither_the_app_nor_its_libraries(refused_url: str, tmp_path: Path) -> None:
    # It runs every 30 s in every container: only the standard library and app.cli.
    heartbeat = beat_at(tmp_path / "worker.heartbeat", 1)
    script = (
        "import sys, app.cli\n"
        f"code = app.cli.main(['health', '--url', {refused_url!r}, '--heartbeat', "
        f"{str(heartbeat)!r}])\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'sqlalchemy', 'pydantic', 'pydantic_settings', 'fastapi',"
        " 'starlette', 'apscheduler', 'babel', 'jinja2', 'uvicorn'}), code)\n"
        "print(sorted(name for name in sys.modules if name.startswith('app.')))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("AFTERSALE_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    libraries, modules = result.stdout.splitlines()[-2:]
    assert libraries == "[] 0"
    assert modules == "['app.cli', 'app.listen', 'app.simulate', 'app.simulate.options']"


async def test_heartbeat_job_writes_the_time_after_a_database_round_trip(
    runtime: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "var"
    folder.mkdir()
    path = folder / "worker.heartbeat"
    before = datetime.now(UTC)
    await Heartbeat(runtime, path).beat()
    written = datetime.fromisoformat(path.read_text().strip())
    assert before <= written <= datetime.now(UTC)
    # Written through a temporary file, renamed over the old one: nothing else left behind.
    await Heartbeat(runtime, path).beat()
    assert [entry.name for entry in folder.iterdir()] == ["worker.heartbeat"]
    assert datetime.fromisoformat(path.read_text().strip()) >= written


async def test_heartbeat_job_stops_quietly_while_the_database_is_down(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = beat_at(tmp_path / "worker.heartbeat", 120)
    old = path.read_text()
    # A database server that is not there: connections are refused.
    down = create_engine(f"postgresql+asyncpg://aftersale@127.0.0.1:{free_port()}/aftersale")
    heartbeat = Heartbeat(dataclasses.replace(runtime, engine=down), path)
    try:
        with caplog.at_level(logging.INFO, logger="app.worker"):
            await heartbeat.beat()  # does not raise into the scheduler
            await heartbeat.beat()
            assert path.read_text() == old
            # The database is back.
            heartbeat.runtime = runtime
            await heartbeat.beat()
    finally:
        await down.dispose()
    assert path.read_text() != old
    assert [record.getMessage() for record in caplog.records] == [
        f"worker heartbeat stopped: {path} not updated",  # once per outage, not per beat
        f"worker heartbeat written again to {path}",
    ]


async def test_worker_heartbeat_goes_on_while_a_long_drain_runs(
    runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    path = tmp_path / "worker.heartbeat"
    settings = runtime.settings.model_copy(update={"worker_heartbeat_file": path})
    runtime = dataclasses.replace(runtime, settings=settings)
    await seed_messages(runtime, 12)
    smtp_sink.data_delay = 0.3  # 12 mails over 2 connections: a drain of about 2 s
    worker = Worker(runtime, heartbeat_seconds=0.2)
    await worker.start()
    seen_during_drain = set()
    try:
        await wait_for(lambda: len(smtp_sink.received) >= 1)
        while len(smtp_sink.received) < 12:
            if path.exists():
                seen_during_drain.add(path.read_text())
            await asyncio.sleep(0.05)

        async def all_sent() -> bool:
            return await status_counts(runtime) == {"sent": 12}

        await wait_for(all_sent)
    finally:
        await worker.stop()
    # Beats written between the first and the last mail of one drain, not after it.
    assert len(seen_during_drain) >= 3, seen_during_drain
