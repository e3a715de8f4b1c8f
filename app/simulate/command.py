"""`aftersale simulate ORDERS.jsonl`: read, replay and print; no database, no SMTP."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TextIO

from app.catalog.command import read_jsonl
from app.catalog.memory import MemoryCatalog
from app.catalog.recommendations import Weighting
from app.file_import import BadLine
from app.intake.jsonl import parse_lines
from app.progress import ProgressBar
from app.rules.loader import load_rules
from app.simulate.engagement import take_engagement
from app.simulate.recommend import Catalog, Recommendations
from app.simulate.replay import REVIEW_HOLD, SimulationResult, simulate
from app.simulate.report import json_lines, table
from app.simulate.shards import can_fork, default_jobs, simulate_split, splittable


def simulate_command(
    *,
    orders: Path,
    rules_dir: Path,
    start: datetime | None,
    until: datetime | None,
    output_format: str,
    default_time_zone: str,
    stdout: TextIO,
    stderr: TextIO,
    catalog: Path | None = None,
    weighting: Weighting | None = None,
    cache_seconds: float = 600.0,
    jobs: int | None = None,
    review_hold: timedelta = REVIEW_HOLD,
) -> int:
    """Print the timeline; 1 with every problem on stderr and nothing on stdout.

    `catalog`: a JSONL of our product JSON (as `aftersale catalog import` reads): order items
    are resolved to its products as intake resolves them, so rules see their categories,
    types, vendors and tags; and rules with `recommend` pick from them, counted from the
    replayed orders as the dispatcher counts them from the database.

    `jobs`: processes to split the replay across by customer (app/simulate/shards.py; the
    result is the same); None for every core, or one for a small file. Rules that count
    across customers (learned intervals, recommendations) take one."""
    rules = load_rules(rules_dir)
    if rules.errors:
        for error in rules.errors:
            print(error, file=stderr)
        print(f"{len(rules.errors)} error(s) in {rules_dir}", file=stderr)
        return 1
    recommendations = None
    products = None
    if catalog is not None:
        try:
            read, bad_products = read_jsonl(catalog.read_bytes())
        except OSError as exc:
            print(f"aftersale simulate: {catalog}: {exc.strerror or exc}", file=stderr)
            return 1
        if bad_products:
            for bad_product in bad_products:
                print(f"{catalog}:{bad_product.line}: {bad_product.message}", file=stderr)
            print(f"{len(bad_products)} bad line(s) in {catalog}", file=stderr)
            return 1
        products = MemoryCatalog(product for _, product in read)
        recommendations = Recommendations(
            catalog=Catalog.of(product for _, product in read),
            weighting=weighting or Weighting(),
            cache=timedelta(seconds=cache_seconds),
        )
    elif any(rule.recommend is not None for rule in rules.rules):
        print(
            "aftersale simulate: rules with 'recommend' show no products without --catalog",
            file=stderr,
        )
    try:
        lines = orders.read_bytes().split(b"\n")
    except OSError as exc:
        print(f"aftersale simulate: {orders}: {exc.strerror or exc}", file=stderr)
        return 1
    wanted = jobs if jobs is not None else default_jobs(len(lines))
    across = splittable(rules, recommendations)
    if wanted > 1 and (across is not None or not can_fork()):
        if jobs is not None:
            why = across or "processes are forked on Linux only"
            print(f"aftersale simulate: one process: {why}", file=stderr)
        wanted = 1
    bar = ProgressBar(stderr) if stderr.isatty() and wanted == 1 else None
    result: SimulationResult | None = None
    bad: list[BadLine] = []
    with paused_gc():
        if wanted > 1:
            split = simulate_split(
                lines,
                jobs=wanted,
                rules=rules,
                start=start,
                until=until,
                default_time_zone=default_time_zone,
                recommendations=recommendations,
                catalog=products,
                review_hold=review_hold,
            )
            bad, result = split.bad, split.result
        # One process: asked for, or the split found two processes sharing a customer.
        if wanted == 1 or (not bad and result is None):
            reading = partial(bar.update, "reading", total=len(lines)) if bar else None
            engagement, bad = take_engagement(lines)
            events, bad_bodies = parse_lines(lines, progress=reading)
            bad = sorted([*bad, *bad_bodies], key=lambda problem: problem.line)
            if not bad:
                result = simulate(
                    events,
                    rules=rules,
                    start=start,
                    until=until,
                    default_time_zone=default_time_zone,
                    progress=partial(bar.update, "replaying") if bar else None,
                    recommendations=recommendations,
                    catalog=products,
                    engagement=engagement,
                    review_hold=review_hold,
                )
    if bar is not None:
        bar.close()
    if bad:
        for problem in bad:
            print(f"{orders}:{problem.line}: {problem.message}", file=stderr)
        print(f"{len({problem.line for problem in bad})} bad line(s) in {orders}", file=stderr)
        return 1
    assert result is not None
    printed = json_lines(result) if output_format == "json" else table(result)
    stdout.writelines(line + "\n" for line in printed)
    return 0


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. A replay builds millions of objects that live
    to its end; the collector walked them again and again (reading took twice as long)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
