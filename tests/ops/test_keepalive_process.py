"""`serve` keeps idle connections for HTTP_KEEPALIVE_SECONDS, longer than a balancer's idle
timeout by default, so the balancer never reuses a connection the server is closing."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.smtp_sink import free_port
from tests.test_processes import process, service_env, wait_http

pytestmark = pytest.mark.slow

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def ask(connection: socket.socket) -> bytes:
    """One request on a kept-alive connection; the answer's status line (b"" once closed)."""
    connection.sendall(REQUEST)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = connection.recv(4096)
        if not chunk:
            return b""
        answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    status, *headers = head.split(b"\r\n")
    [length] = [
        int(line.split(b":")[1]) for line in headers if line.lower().startswith(b"content-length:")
    ]
    while len(body) < length:  # the whole answer, so the next one starts clean
        body += connection.recv(4096)
    return status


def idle_then_ask(port: int, *, idle: float) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        first = ask(connection)
        time.sleep(idle)
        try:
            second = ask(connection)
        except (ConnectionResetError, BrokenPipeError):
            second = b""
    return first, second


@pytest.mark.parametrize(
    ("setting", "idle", "kept"),
    [
        # uvicorn's own default (5 s) would have closed it: a balancer idling 6 s gets a 502.
        (None, 6.0, True),
        ("1", 2.5, False),
    ],
)
async def test_idle_connection_lives_as_long_as_the_setting(
    engine: object, database_url: str, tmp_path: Path, setting: str | None, idle: float, kept: bool
) -> None:
    port = free_port()
    extra = {"AFTERSALE_HTTP_KEEPALIVE_SECONDS": setting} if setting else {}
    env = service_env(database_url, **extra)
    with process("serve", "--role", "api", "--port", str(port), env=env, tmp_path=tmp_path):
        await wait_http(f"http://127.0.0.1:{port}")
        first, second = idle_then_ask(port, idle=idle)
    assert first == b"HTTP/1.1 200 OK"
    assert second == (b"HTTP/1.1 200 OK" if kept else b"")
