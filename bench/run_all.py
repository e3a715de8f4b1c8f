"""`make bench`: every benchmark, one after the other, then one summary line each.

Each benchmark measures its own baseline in the same run on the same machine and prints
`name: ours …, baseline …, ratio …`; this runner shows their whole output as it comes and
repeats those lines at the end. Benchmarks that take a database run on SQLite (each
script's default: a temporary file) and on PostgreSQL (`--database-url`, or the environment
for bench/stats.py). The PostgreSQL database, emptied by each benchmark, comes from
AFTERSALE_BENCH_DATABASE_URL (default `bench` on 127.0.0.1). When PostgreSQL is unreachable
its runs are reported as skipped, and the runner exits non-zero.

    python bench/run_all.py [--quick] [--only NAME ...] [--sqlite-only | --postgres-only]

`--quick` passes each benchmark its small size: a check that they all run, not figures.
docs/performance.md records the figures of a full run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
# `name (qualifier): ours …, baseline …, ratio …`, and the downtime comparison line.
SUMMARY = re.compile(r"^[a-z][\w-]*( \([^)]*\))?: ours .*")


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    databases: tuple[str, ...]  # "sqlite", "postgresql"; () for none
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)
    # How the database reaches the script: a flag, or the environment (bench/stats.py).
    url_via_env: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


BENCHMARKS = (
    Benchmark("learned-intervals", "learned_intervals.py", (), quick=("--customers", "300")),
    # Real order history (bench/data/): the figures need the whole file, quick or not.
    Benchmark("timing-backtest", "timing_backtest.py", (), quick=()),
    Benchmark(
        "recommendations",
        "recommendations.py",
        ("sqlite", "postgresql"),
        quick=("--customers", "1000"),
    ),
    Benchmark(
        "simulate",
        "simulate.py",
        (),
        args=("--orders", "20000", "--one-rule-orders", "70000", "--repeat", "3"),
        quick=("--orders", "2000", "--one-rule-orders", "3000"),
    ),
    Benchmark("ingest", "ingest.py", ("sqlite", "postgresql")),
    Benchmark("peer", "peer.py", ("postgresql",)),
    Benchmark("dispatch", "dispatch.py", ("sqlite", "postgresql")),
    Benchmark("render", "render.py", (), quick=("--messages", "600")),
    Benchmark("claim", "claim.py", ("sqlite", "postgresql")),
    Benchmark("tracking", "tracking.py", ("sqlite", "postgresql")),
    Benchmark(
        "stats",
        "stats.py",
        ("sqlite", "postgresql"),
        quick=("--runs", "3", "--fold-events", "5000"),
        url_via_env=True,
    ),
)


def postgres_reachable(url: str) -> bool:
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(
            url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10
        )
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def command(benchmark: Benchmark, database: str | None, *, quick: bool, postgres: str):
    argv = [sys.executable, str(BENCH / benchmark.script), *benchmark.args]
    if quick:
        argv += benchmark.quick
    env = dict(os.environ, **benchmark.extra_env)
    env.pop("AFTERSALE_BENCH_DATABASE_URL", None)
    if database == "postgresql":
        if benchmark.url_via_env:
            env["AFTERSALE_BENCH_DATABASE_URL"] = postgres
        else:
            argv += ["--database-url", postgres]
    return argv, env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: do they all run?")
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BENCHMARKS])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sqlite-only", action="store_true")
    which.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args()
    postgres = os.environ.get("AFTERSALE_BENCH_DATABASE_URL", DEFAULT_POSTGRES)
    have_postgres = not args.sqlite_only and postgres_reachable(postgres)
    summary: list[str] = []
    problems: list[str] = []
    started = time.monotonic()
    for benchmark in BENCHMARKS:
        if args.only and benchmark.name not in args.only:
            continue
        databases: tuple[str | None, ...] = benchmark.databases or (None,)
        for database in databases:
            if database == "sqlite" and args.postgres_only:
                continue
            if database == "postgresql" and args.sqlite_only:
                continue
            label = benchmark.name + (f" ({database})" if database else "")
            if database == "postgresql" and not have_postgres:
                problems.append(f"{label}: skipped, PostgreSQL at {postgres} is unreachable")
                continue
            argv, env = command(benchmark, database, quick=args.quick, postgres=postgres)
            print(f"\n== {label}: {' '.join(argv[1:])}", flush=True)
            began = time.monotonic()
            run = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert run.stdout is not None
            for line in run.stdout:
                print(line, end="", flush=True)
                if SUMMARY.match(line):
                    summary.append(line.rstrip())
            if run.wait() != 0:
                problems.append(f"{label}: exited with {run.returncode}")
            print(f"== {label}: {time.monotonic() - began:.0f} s", flush=True)
    print(
        f"\n== summary ({time.monotonic() - started:.0f} s{', quick sizes' if args.quick else ''})"
    )
    for line in summary:
        print(line)
    for line in problems:
        print(f"PROBLEM {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
