"""`serve`'s HTTP server: a socket bound before the app starts, and the banner once it is up."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.ops.server import BannerServer, listening_socket


async def test_banner_is_logged_once_the_server_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = BannerServer(
        uvicorn.Config(app, log_config=None, lifespan="off"),
        banner=["aftersale listening", "  dashboard: /dashboard"],
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.05)
        banner = [r.getMessage() for r in caplog.records if r.name == "aftersale"]
        assert banner == ["aftersale listening", "  dashboard: /dashboard"]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
    finally:
        server.should_exit = True
        await serving
        sock.close()


def test_a_taken_port_raises_before_anything_starts() -> None:
    with listening_socket("127.0.0.1", 0) as first:
        first.listen()
        with pytest.raises(OSError, match="in use"):
            listening_socket("127.0.0.1", first.getsockname()[1])
