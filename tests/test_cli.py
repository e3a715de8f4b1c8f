"""The first hour with the `aftersale` command: its version, where `serve` listens (HOST and
PORT, their flags, PUBLIC_URL and `health` following), and a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import version
from app.cli import CANNOT_START, load_settings, main, startup_banner
from app.config import Settings
from tests.ops.test_health import HealthServer

AFTERSALE = str(Path(sys.executable).parent / "aftersale")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No listener setting from the machine's environment, and no .env file."""
    for name in ("AFTERSALE_HOST", "HOST", "AFTERSALE_PORT", "PORT", "AFTERSALE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"aftersale {version()}\n"
    assert version()[0].isdigit()


def test_serve_flags_say_where_their_defaults_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "AFTERSALE_PORT or PORT, else 8000" in text
    assert "AFTERSALE_HOST or HOST, else 127.0.0.1" in text


def test_port_and_host_come_from_either_name_and_public_url_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("HOST", "0.0.0.0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.host, settings.port) == ("0.0.0.0", 8123)
    # Every address includes loopback: links from this machine go there.
    assert settings.public_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("AFTERSALE_PORT", "8124")  # the prefixed name wins
    assert Settings(_env_file=None).public_url == "http://127.0.0.1:8124"  # type: ignore[call-arg]
    # `serve --port` wins over both, and PUBLIC_URL still follows.
    overridden = load_settings(port=8125)
    assert overridden is not None and overridden.public_url == "http://127.0.0.1:8125"
    # A PUBLIC_URL that is set stays as it is.
    monkeypatch.setenv("AFTERSALE_PUBLIC_URL", "https://mail.shop.example")
    assert Settings(_env_file=None).public_url == "https://mail.shop.example"  # type: ignore[call-arg]


def test_public_url_follows_port_from_a_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=8126\n")
    settings = Settings()
    assert (settings.port, settings.public_url) == (8126, "http://127.0.0.1:8126")


def test_busy_port_is_one_line_and_exit_code_2(
    busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["serve", "--port", str(busy_port)]) == CANNOT_START == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1
    assert err.startswith(f"aftersale: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "in use" in err and f"PORT={busy_port + 1} make run" in err
    # The same from PORT, as `make run PORT=...` passes it.
    monkeypatch.setenv("PORT", str(busy_port))
    assert main(["serve", "--role", "api"]) == 2
    assert f"127.0.0.1:{busy_port}" in capsys.readouterr().err


def test_busy_port_as_a_person_sees_it(busy_port: int, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AFTERSALE_")}
    env.pop("HOST", None)
    env.update(PORT=str(busy_port), AFTERSALE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/a.db")
    result = subprocess.run(
        [AFTERSALE, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()  # no traceback, no log lines before it
    assert line.startswith(f"aftersale: cannot listen on 127.0.0.1:{busy_port}: ")


def test_banner_lists_dashboard_outbox_docs_and_webhooks() -> None:
    settings = Settings(port=8127, _env_file=None)  # type: ignore[call-arg]
    banner = "\n".join(startup_banner(settings, role="all"))
    base = "http://127.0.0.1:8127"
    for url in (f"{base}/dashboard", f"{base}/dev/outbox", f"{base}/docs", f"{base}/webhooks"):
        assert url in banner
    assert "PUBLIC_URL" not in banner  # the same address: nothing to say
    elsewhere = Settings(
        port=8127,
        public_url="https://mail.example.org",
        api_docs=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    banner = "\n".join(startup_banner(elsewhere, role="api"))
    assert "/docs" not in banner
    assert "links in mail point to PUBLIC_URL https://mail.example.org" in banner


def test_health_follows_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = HealthServer()
    try:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = str(server.server_address[1])
        monkeypatch.setenv("AFTERSALE_WORKER_HEARTBEAT_FILE", "")
        monkeypatch.setenv("PORT", port)
        assert main(["health"]) == 0
        assert f"http://127.0.0.1:{port}/healthz answered HTTP 200" in capsys.readouterr().out
        # From .env when the environment has no port, as Settings reads it.
        monkeypatch.delenv("PORT")
        (tmp_path / ".env").write_text(f"AFTERSALE_PORT={port}\nHOST=0.0.0.0\n")
        assert main(["health"]) == 0
        # A port that is no number is said, not a traceback.
        (tmp_path / ".env").unlink()
        monkeypatch.setenv("PORT", "not-a-port")
        assert main(["health"]) == 1
        assert "PORT is not a port number: 'not-a-port'" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
