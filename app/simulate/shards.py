"""`simulate --jobs N`: the replay split by customer across N processes, with the very
result of one process.

Customers do not meet in the memory store: a customer's messages depend on their own events
(their orders, caps, sequences, jobs), found by the shop's ids and addresses. So the lines are
split into groups that share no id (event, order, customer, engagement) and no address, the
groups dealt out to the processes, and each process reads and replays its own lines only.
What crosses customers (learned intervals, recommendations) is for the caller to keep in one
process (`splittable`).

The split is a quick look at the raw bytes; what is exact comes after: each process reports
the ids and addresses of its lines as validated, and if two processes share one (an address
written in two ways that validate the same, say) the caller replays in one process instead.
The messages of the processes are merged in `listing_order`, which a single process uses too.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from app.catalog.memory import MemoryCatalog
from app.events import (
    CustomerDeleted,
    CustomerUpdated,
    Envelope,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.file_import import BadLine
from app.intake.jsonl import parse_lines
from app.lifecycle.memory import as_utc
from app.rules.loader import RuleSet
from app.simulate.engagement import Engagement, ReviewLine, take_engagement
from app.simulate.recommend import Recommendations
from app.simulate.replay import (
    DEFAULT_TAIL,
    REVIEW_HOLD,
    SimulationResult,
    listing_order,
    simulate,
    summarized,
)

# Below this many lines a replay takes about a second or less: one process (`default_jobs`).
SPLIT_FROM_LINES = 5_000
# An "id" or "email" and its value, a string without escapes or an integer: the ids and
# addresses by which the store finds customers and orders (and ids of anything else, which
# only joins more lines than needed). A line with a backslash is decoded instead.
_KEYS = re.compile(rb'"(?:id|email)"\s*:\s*(?:"([^"\\]*)"|(-?\d+))')


def default_jobs(lines: int) -> int:
    """Every core this process may use, each with half of SPLIT_FROM_LINES or more; one
    for a small file."""
    if lines < SPLIT_FROM_LINES or not can_fork():
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, lines // (SPLIT_FROM_LINES // 2)))


def can_fork() -> bool:
    # Forked workers share the lines already read; other start methods would read them
    # again. Forking is safe on Linux only (macOS frameworks may hold locks).
    return sys.platform == "linux"


def splittable(rules: RuleSet, recommendations: Recommendations | None) -> str | None:
    """Why these rules need one process (they read across customers), else None."""
    if any(rule.send.learned is not None for rule in rules.rules):
        return "learned intervals are counted across customers"
    if recommendations is not None and any(rule.recommend is not None for rule in rules.rules):
        return "recommendations are counted across customers"
    return None


def line_keys(raw: bytes) -> list[bytes]:
    """The ids and addresses on one line, lower-cased (a quick look, not validation)."""
    if b"\\" not in raw:
        return [(text or number).lower() for text, number in _KEYS.findall(raw)]
    try:
        decoded = json.loads(raw)
    except ValueError:
        return []  # a bad line: reported, never replayed
    found: list[bytes] = []
    _collect(decoded, found)
    return found


def _collect(value: Any, found: list[bytes]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if name in ("id", "email") and isinstance(item, str | int):
                found.append(str(item).lower().encode("utf-8", "surrogatepass"))
            else:
                _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def split(lines: Sequence[bytes], jobs: int) -> list[int]:
    """Each line's process (0..jobs-1): lines that share an id or address go together, and
    the groups are dealt out so that the processes get about as many lines each."""
    node_of: dict[bytes, int] = {}
    parent: list[int] = []

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    line_node: list[int] = []
    for raw in lines:
        # Each line is a node of its own, joined to a node per key it names.
        here = len(parent)
        parent.append(here)
        line_node.append(here)
        for key in line_keys(raw):
            node = node_of.get(key)
            if node is None:
                node_of[key] = here
                continue
            a, b = root(node), root(here)
            if a != b:
                parent[max(a, b)] = min(a, b)
    load = [0] * jobs
    shard_of_root: dict[int, int] = {}
    shards: list[int] = []
    sizes: dict[int, int] = {}
    roots = [root(node) for node in line_node]
    for top in roots:
        sizes[top] = sizes.get(top, 0) + 1
    for top in roots:
        shard = shard_of_root.get(top)
        if shard is None:
            # In order of first line: the lightest process so far takes the group.
            shard = shard_of_root[top] = load.index(min(load))
            load[shard] += sizes[top]
        shards.append(shard)
    return shards


def true_keys(
    events: Iterable[Envelope], engagement: Iterable[Engagement | ReviewLine]
) -> set[str]:
    """The ids and addresses of validated lines, as the store looks them up."""
    keys: set[str] = set()
    add = keys.add
    for event in events:
        add(event.id)
        if isinstance(event, OrderPlaced | OrderFulfilled | OrderClosed):
            add(event.order.id)
        if isinstance(event, OrderPlaced | OrderFulfilled | CustomerUpdated | CustomerDeleted):
            customer = event.customer
            if customer is not None:
                add(customer.id)
                if customer.email is not None:
                    add(str(customer.email).strip().lower())
    for line in engagement:
        for ref in (line.order, getattr(line, "customer", None)):
            if ref is not None:
                add(ref.id)
    return keys


@dataclass(frozen=True)
class _Work:
    """What the forked processes share with their parent (inherited, never pickled)."""

    lines: list[bytes]
    shards: list[int]
    rules: RuleSet
    default_time_zone: str
    recommendations: Recommendations | None
    catalog: MemoryCatalog | None
    review_hold: timedelta


_WORK: _Work | None = None


@dataclass(frozen=True)
class Split:
    """How a split replay ended: bad lines, or the result, or (`result` None and no bad
    lines) two processes found to share a customer: replay in one process."""

    bad: list[BadLine]
    result: SimulationResult | None


def simulate_split(
    lines: list[bytes],
    *,
    jobs: int,
    rules: RuleSet,
    start: datetime | None,
    until: datetime | None,
    default_time_zone: str,
    recommendations: Recommendations | None = None,
    catalog: MemoryCatalog | None = None,
    review_hold: timedelta = REVIEW_HOLD,
) -> Split:
    """Read and replay `lines` in `jobs` forked processes (see the module's docstring)."""
    global _WORK
    _WORK = _Work(
        lines=lines,
        shards=split(lines, jobs),
        rules=rules,
        default_time_zone=default_time_zone,
        recommendations=recommendations,
        catalog=catalog,
        review_hold=review_hold,
    )
    context = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    workers = []
    try:
        for index in range(jobs):
            ours, theirs = context.Pipe()
            worker = context.Process(target=_work, args=(index, theirs), daemon=True)
            worker.start()
            theirs.close()
            pipes.append(ours)
            workers.append(worker)
        read = [_receive(pipe) for pipe in pipes]
        bad = sorted((line for shard in read for line in shard[0]), key=lambda line: line.line)
        keys = [shard[3] for shard in read]
        if bad or len(set().union(*keys)) < sum(len(shard) for shard in keys):
            for pipe in pipes:
                pipe.send(None)
            return Split(bad=bad, result=None)
        firsts = [shard[1] for shard in read if shard[1] is not None]
        lasts = [shard[2] for shard in read if shard[2] is not None]
        # As `simulate` takes them from the whole timeline.
        if firsts:
            first, last = min(firsts), max(lasts)
        else:
            first = last = as_utc(start or until or datetime(1970, 1, 1, tzinfo=UTC))
        window = (
            as_utc(start) if start else first,
            as_utc(until) if until else last + DEFAULT_TAIL,
        )
        for pipe in pipes:
            pipe.send(window)
        results: list[SimulationResult] = [_receive(pipe) for pipe in pipes]
    finally:
        _WORK = None
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
        for pipe in pipes:
            pipe.close()
    return Split(bad=[], result=merged(results))


def merged(results: Sequence[SimulationResult]) -> SimulationResult:
    """One result of the processes' results. A customer's messages are all in one of them,
    so merging by `listing_order` keeps each customer's in the order they were decided."""
    first = results[0]
    return summarized(
        list(heapq.merge(*(result.outcomes for result in results), key=listing_order)),
        start=first.start,
        until=first.until,
        beyond_until=sum(result.beyond_until for result in results),
        events=sum(result.events for result in results),
        duplicate_events=sum(result.duplicate_events for result in results),
        unmatched_engagement=sum(result.unmatched_engagement for result in results),
    )


def _receive(pipe: Connection) -> Any:
    try:
        message = pipe.recv()
    except EOFError:
        raise RuntimeError("a simulate process ended without its result (out of memory?)") from None
    if isinstance(message, _Failed):
        raise RuntimeError(f"a simulate process failed:\n{message.trace}")
    return message


@dataclass(frozen=True)
class _Failed:
    trace: str


def _work(index: int, pipe: Connection) -> None:
    """One process: read its lines, report, then replay in the window the parent sends."""
    try:
        work = _WORK
        assert work is not None
        mine = [
            raw if shard == index else b""
            for raw, shard in zip(work.lines, work.shards, strict=True)
        ]
        engagement, bad = take_engagement(mine)
        events, bad_bodies = parse_lines(mine)
        times = [as_utc(line.occurred_at) for line in (*events, *engagement)]
        pipe.send(
            (
                [*bad, *bad_bodies],
                min(times, default=None),
                max(times, default=None),
                true_keys(events, engagement),
            )
        )
        window = pipe.recv()
        if window is None:
            return
        start, until = window
        pipe.send(
            simulate(
                events,
                rules=work.rules,
                start=start,
                until=until,
                default_time_zone=work.default_time_zone,
                recommendations=work.recommendations,
                catalog=work.catalog,
                engagement=engagement,
                review_hold=work.review_hold,
            )
        )
    except BaseException:  # the parent reports it
        pipe.send(_Failed(traceback.format_exc()))
    finally:
        pipe.close()
