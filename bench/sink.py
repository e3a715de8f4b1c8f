"""An SMTP sink in a process of its own, for the benchmarks that send mail.

It accepts every message and counts it (and, if asked, keeps its bytes). Running in its own
process, its CPU is charged to neither side of a comparison; both sides send to the same
sink, one after the other. The parent talks to it over a pipe: `count()`, `take()`,
`stop()`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
from multiprocessing.connection import Connection
from typing import Any

from aiosmtpd.smtp import SMTP

# (envelope from, recipients, raw message)
Kept = tuple[str, list[str], bytes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SinkProcess:
    def __init__(self, *, keep: bool = False) -> None:
        self.port = free_port()
        self.keep = keep
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(self.port, child, keep), daemon=True)

    def start(self) -> SinkProcess:
        self._process.start()
        if not self._pipe.poll(30) or self._pipe.recv() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        return self

    @property
    def pid(self) -> int:
        assert self._process.pid is not None, "start() first"
        return self._process.pid

    def _ask(self, command: str) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    def count(self) -> tuple[int, int]:
        """Messages accepted since the last `take()`, and their distinct recipients."""
        messages, recipients = self._ask("count")
        return int(messages), int(recipients)

    def take(self) -> list[Kept]:
        """What was kept since the last `take()` (nothing unless keep=True); counts restart."""
        kept: list[Kept] = self._ask("take")
        return kept

    def stop(self) -> None:
        if self._process.is_alive():
            self._pipe.send("stop")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


class _Handler:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.count = 0
        self.recipients: set[str] = set()
        self.kept: list[Kept] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        self.recipients.update(envelope.rcpt_tos)
        if self.keep:
            raw = envelope.original_content or envelope.content
            self.kept.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 OK"


def _serve(port: int, pipe: Connection, keep: bool) -> None:
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(_main(port, pipe, keep))


async def _main(port: int, pipe: Connection, keep: bool) -> None:
    loop = asyncio.get_running_loop()
    handler = _Handler(keep)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.local", data_size_limit=None),
        host="127.0.0.1",
        port=port,
        backlog=512,
    )
    stopped = asyncio.Event()

    def on_command() -> None:
        command = pipe.recv()
        if command == "count":
            pipe.send((handler.count, len(handler.recipients)))
        elif command == "take":
            pipe.send(handler.kept)
            handler.kept, handler.count, handler.recipients = [], 0, set()
        elif command == "stop":
            stopped.set()

    loop.add_reader(pipe.fileno(), on_command)
    pipe.send("ready")
    await stopped.wait()
    loop.remove_reader(pipe.fileno())
    server.close()
