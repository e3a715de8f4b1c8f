"""The real thing: `aftersale serve` processes, HTTP over a socket, signals."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.config import ROOT
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import order_created, signed_headers
from tests.smtp_sink import SmtpSink, free_port

pytestmark = pytest.mark.slow
AFTERSALE = str(Path(sys.executable).parent / "aftersale")
THANK_YOU_ONLY = Path(tempfile.mkdtemp(prefix="aftersale-rules-"))
shutil.copy(ROOT / "rules" / "thank-you.yaml", THANK_YOU_ONLY)


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AFTERSALE_")}
    env.update(
        AFTERSALE_DATABASE_URL=database_url,
        AFTERSALE_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        AFTERSALE_DISPATCH_INTERVAL="0.2",
        # Only the thank-you rule: no sample rule's date (a birthday, say) can add mail.
        AFTERSALE_RULES_DIR=str(THANK_YOU_ONLY),
        **extra,
    )
    return env


@contextmanager
def process(*args: str, env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / f"{args[-1]}-{time.monotonic_ns()}.log").open("wb")
    proc = subprocess.Popen([AFTERSALE, *args], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


async def wait_http(url: str) -> None:
    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(url + "/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up)


async def post_order(url: str) -> httpx.Response:
    # These processes run on the real clock: an order from now, so its thank-you is due.
    now = datetime.now(UTC).isoformat()
    body = order_created(email="real@example.org", created_at=now, occurred_at=now)
    raw = httpx.Request("POST", url, json=body).content
    async with httpx.AsyncClient() as http:
        return await http.post(url + "/webhooks/orders", content=raw, headers=signed_headers(raw))


async def test_serve_all_sends_and_stops_cleanly_on_sigterm(
    engine: object, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(
        database_url, AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off"
    )
    with process("serve", "--role", "all", "--port", str(port), env=env, tmp_path=tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        await wait_http(url)
        response = await post_order(url)
        assert response.status_code == 200, response.text
        await wait_for(lambda: len(smtp_sink.received) == 1)
        assert smtp_sink.received[0].recipients == ["real@example.org"]
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "stopped" in logs and "Traceback" not in logs, logs


async def test_make_run_mode_captures_mail_in_dev_outbox(
    engine: object, database_url: str, tmp_path: Path
) -> None:
    port, smtp_port = free_port(), free_port()
    env = service_env(
        database_url,
        AFTERSALE_ENV="development",
        AFTERSALE_DEV_SMTP_PORT=str(smtp_port),
        AFTERSALE_DEV_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    with process("serve", "--role", "all", "--port", str(port), env=env, tmp_path=tmp_path):
        url = f"http://127.0.0.1:{port}"
        await wait_http(url)
        assert (await post_order(url)).status_code == 200
        async with httpx.AsyncClient(base_url=url) as http:

            async def captured() -> bool:
                return len((await http.get("/dev/outbox")).json()) == 1

            await wait_for(captured)
            [entry] = (await http.get("/dev/outbox")).json()
            assert entry["to"].endswith("<real@example.org>") or entry["to"] == "real@example.org"
            eml = await http.get(entry["url"])
            assert eml.status_code == 200 and b"Subject:" in eml.content
            assert (await http.get("/dev/outbox/..%2F..%2Fetc%2Fpasswd")).status_code == 404
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_db_upgrade_command_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "aftersale.db"
    env = service_env(f"sqlite+aiosqlite:///{database}")
    result = subprocess.run(
        [AFTERSALE, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    assert database.exists()


def test_production_refuses_to_start_with_placeholders(tmp_path: Path) -> None:
    env = service_env("sqlite+aiosqlite:///" + str(tmp_path / "x.db"), AFTERSALE_ENV="production")
    env["AFTERSALE_WEBHOOK_SECRET"] = "changeme"
    result = subprocess.run([AFTERSALE, "serve"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "AFTERSALE_WEBHOOK_SECRET" in stderr and "AFTERSALE_SECRET_KEY" in stderr
