"""The HTTP server of `aftersale serve`: uvicorn on a socket bound before anything starts."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import uvicorn

from app.runtime import freeze_startup_heap

log = logging.getLogger("aftersale")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port as uvicorn binds one (SO_REUSEADDR: a port left in
    TIME_WAIT by a restart is free); OSError when the port is taken or not ours to take."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


class BannerServer(uvicorn.Server):
    """uvicorn's server, which logs `banner` once the app has started and the socket
    listens (uvicorn's own "running on" line is not logged for a socket handed in)."""

    def __init__(self, config: uvicorn.Config, *, banner: Sequence[str]) -> None:
        super().__init__(config)
        self.banner = tuple(banner)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            # After the lifespan: its rules, templates and pools are loaded by now.
            freeze_startup_heap()
            for line in self.banner:
                log.info("%s", line)
