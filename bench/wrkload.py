"""HTTP load from wrk, in its own process: honest rates on a small machine.

A Python client (httpx) spends a few ms of CPU per request, as much as a bare server, and on
two cores it caps every side near its own speed. wrk (C, one thread) spends tens of µs.

Each run gets a file of complete, pre-built HTTP requests (signed webhooks each with their own
event, order and customer; tracking hits with their own user agents), separated by NUL bytes.
A Lua script reads it at init and sends them in order; each wrk thread starts at its own
offset. With `distinct=True` a run that would send a request twice stops with an error
instead (a repeated webhook is a cheap duplicate, not an order). `rate` paces the run in
the script's `delay()` on a fixed schedule (open loop as far as the connections allow): the
latency a shop sees at that rate. The script's `done()` prints one JSON line that this
module reads: completed requests, errors, non-2xx answers and latency percentiles.

`make bench` installs wrk from the distribution (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local threads = {}
function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  requests = {}
  local at = 1
  while true do
    local stop = string.find(data, "\0", at, true)
    if not stop then break end
    requests[#requests + 1] = string.sub(data, at, stop - 1)
    at = stop + 1
  end
  stride = tonumber(args[2])
  distinct = args[3] == "1"
  local rate = tonumber(args[4])  -- requests per second for this thread, 0: as fast as it can
  interval = rate > 0 and 1000 / rate or 0
  index = offset + 1
  wrapped = 0
end

function request()
  if index > #requests then
    wrapped = 1
    if distinct then wrk.thread:stop() end
    index = ((index - 1) % #requests) + 1
  end
  local out = requests[index]
  index = index + stride
  return out
end

PACED

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do wrapped = wrapped + (thread:get("wrapped") or 0) end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "status": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"wrapped": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    wrapped))
end
"""
PACED = r"""
function delay()
  local now = now_ms()
  if not next_at then next_at = now end
  local wait = next_at - now
  next_at = next_at + interval
  if wait < 0 then return 0 end
  return math.floor(wait)
end
"""


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing(
            "wrk is not installed: `make bench` installs it (apt-get install wrk), "
            "or install it from your distribution"
        )
    return found


def http_request(
    method: str, path: str, host: str, headers: Mapping[str, str] = {}, body: bytes = b""
) -> bytes:
    """One complete HTTP/1.1 request, keep-alive, as wrk sends it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if b"\0" in head or b"\0" in body:
        raise ValueError("a request holds a NUL byte, the file's separator")
    return head + body


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed answers (any status)
    seconds: float
    socket_errors: int  # connect, read, write, timeout
    non_2xx: int  # wrk counts answers with status > 399
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def latency(self) -> str:
        return f"p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms"


def run(
    url: str,
    requests: Iterable[bytes],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    rate: float = 0.0,
    distinct: bool = True,
    timeout_s: int = 10,
) -> WrkResult:
    """wrk against `url` (scheme and host; the path comes from each request) for `seconds`.

    `rate` > 0 paces all threads together at that many requests per second.
    """
    with tempfile.TemporaryDirectory(prefix="wrk-") as folder:
        script = Path(folder) / "requests.lua"
        script.write_text(LUA.replace("PACED", PACED if rate > 0 else ""))
        data = Path(folder) / "requests.bin"
        with data.open("wb") as out:
            for item in requests:
                out.write(item + b"\0")
        argv = [
            wrk_path(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(script),
            url,
            "--",
            str(data),
            str(threads),
            "1" if distinct else "0",
            str(rate / threads),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK-RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    raw = json.loads(lines[-1].removeprefix("WRK-RESULT "))
    if raw["wrapped"] and distinct:
        raise RuntimeError(
            f"wrk ran out of distinct requests ({raw['requests']} answered, "
            f"{raw['status']} of them non-2xx): build more for this run"
        )
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        non_2xx=raw["status"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


# CPU time from /proc: a server's whole process tree, and PostgreSQL's backends of one database.


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # After the command name (which may hold spaces): ppid is the 2nd field, utime
            # and stime the 12th and 13th, in clock ticks.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds so far of `root` and all its descendants, by pid."""
    stats = {pid: found for pid in _pids() if (found := _stat(pid))}
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    out: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1]
            todo += children.get(pid, [])
    return out


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL backends connected to `database`, by pid."""
    out: dict[int, float] = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                title = cmdline.read()
        except OSError:
            continue
        # A backend's title: "postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE".
        parts = title.split(b"\0")[0].split()
        if parts[1:2] and parts[1].endswith(b":"):
            del parts[1]
        mine = len(parts) >= 3 and parts[0] == b"postgres:" and parts[2] == database.encode()
        if mine and (found := _stat(pid)):
            out[pid] = found[1]
    return out


def used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (a process new since `before` counts whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@dataclass
class Snapshot:
    first: tuple[dict[int, float], dict[int, float]]
    seen: tuple[dict[int, float], dict[int, float]]  # the latest reading of every pid seen
    stop: threading.Event
    sampler: threading.Thread


class CpuMeter:
    """CPU seconds of a server's process tree and, if given, its PostgreSQL backends.

    Sampled every `every` seconds between `snapshot()` and `since()`: a backend that exits
    meanwhile (a pool's overflow connection closed) keeps what it had used when last seen.
    """

    def __init__(self, pid: int, database: str | None = None, every: float = 0.5) -> None:
        self.pid, self.database, self.every = pid, database, every

    def _sample(self) -> tuple[dict[int, float], dict[int, float]]:
        return tree_cpu(self.pid), postgres_cpu(self.database) if self.database else {}

    def snapshot(self) -> Snapshot:
        first = self._sample()
        seen = (dict(first[0]), dict(first[1]))
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(self.every):
                for kept, now in zip(seen, self._sample(), strict=True):
                    kept.update(now)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        return Snapshot(first, seen, stop, sampler)

    def since(self, snapshot: Snapshot) -> tuple[float, float]:
        """(server, PostgreSQL) CPU seconds since `snapshot`."""
        snapshot.stop.set()
        snapshot.sampler.join()
        for kept, now in zip(snapshot.seen, self._sample(), strict=True):
            kept.update(now)
        return (
            used(snapshot.first[0], snapshot.seen[0]),
            used(snapshot.first[1], snapshot.seen[1]),
        )
