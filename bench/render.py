"""What a time-limited render costs per message: in the caller, on the renderer's thread
(`render_off_loop`, what the dispatcher does), and in a process pool (the alternative: a
stuck render could be killed, at the price of a round trip per message).

Each way renders the same N messages (the shipped thank-you, restock and cross-sell
templates, en and ru, with `rules check`'s sample contexts), 16 in flight as the
dispatcher's `DISPATCH_CONCURRENCY`, and prints wall time and CPU per message, the pool's
worker processes included.

    python bench/render.py [--messages 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import ROOT
from app.mail.templates import RenderedEmail, TemplateRenderer
from app.preview.lint import ORDER_SAMPLES

TEMPLATES = ["thank-you", "diapers-restock", "coffee-next-variety"]
LOCALES = ["en", "ru"]
IN_FLIGHT = 16
_child: TemplateRenderer | None = None


def renderer() -> TemplateRenderer:
    return TemplateRenderer(ROOT / "templates" / "email", default_locale="en", time_limit=5.0)


def child_render(template: str, locale: str, context: dict[str, Any]) -> RenderedEmail:
    global _child
    if _child is None:
        _child = renderer()
    return _child.render(template, locale=locale, context=context)


def jobs(count: int) -> list[tuple[str, str, dict[str, Any]]]:
    cases = itertools.cycle(
        itertools.product(TEMPLATES, LOCALES, [context for _, context in ORDER_SAMPLES])
    )
    return [next(cases) for _ in range(count)]


def report(name: str, count: int, wall: float, cpu: float) -> None:
    print(
        f"render {name}: {wall / count * 1e3:.3f} ms wall, {cpu / count * 1e3:.3f} ms CPU a message"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    count = parser.parse_args().messages
    work = jobs(count)
    local = renderer()
    for template, locale, context in work[:60]:  # compile and warm the caches
        local.render(template, locale=locale, context=context)
    gate = asyncio.Semaphore(IN_FLIGHT)

    cpu, started = time.process_time(), time.perf_counter()
    for template, locale, context in work:
        local.render(template, locale=locale, context=context)
    report("in the caller", count, time.perf_counter() - started, time.process_time() - cpu)

    async def on_thread(template: str, locale: str, context: dict[str, Any]) -> None:
        async with gate:
            await local.render_off_loop(template, locale=locale, context=context)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(on_thread(*job) for job in work))
    report("on a thread", count, time.perf_counter() - started, time.process_time() - cpu)

    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(max_workers=2, max_tasks_per_child=None)

    async def in_pool(template: str, locale: str, context: dict[str, Any]) -> None:
        async with gate:
            await asyncio.wait_for(
                loop.run_in_executor(pool, child_render, template, locale, context), 10
            )

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(in_pool(*job) for job in work))
    wall = time.perf_counter() - started
    parent = time.process_time() - cpu
    pool.shutdown(wait=True)  # the workers' CPU is counted once they have exited
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    report("in a process pool", count, wall, parent + child)
    print(
        f"render in a process pool: of which {parent / count * 1e3:.3f} ms in the caller, "
        f"{child / count * 1e3:.3f} ms in the 2 workers (start-up and compiling included)"
    )


if __name__ == "__main__":
    asyncio.run(main())
