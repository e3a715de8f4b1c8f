"""Request pace of one client on the public links (`/o/`, `/c/`, `/u/`, `/s/`): a bucket per IP.

The links need no credential beyond their signed token, so nothing else stops one address
from hammering them (or guessing tokens). The buckets live in the process: N API processes
allow a client N times the rate. The clock is injected, so tests run without waiting.
"""

from __future__ import annotations

import time

from app.mail.ratelimit import Clock, TokenBucket

# Above this many clients, the idle (full) buckets are dropped: they hold nothing a new
# bucket would not.
_MAX_IDLE_CLIENTS = 10_000


class ClientRateLimiter:
    """`per_minute` requests a minute per client, up to `burst` at once."""

    def __init__(self, *, per_minute: float, burst: int, clock: Clock = time.monotonic) -> None:
        if not per_minute > 0:
            raise ValueError("per_minute must be positive")
        self._per_minute = per_minute
        self._burst = burst
        self._clock = clock
        self._clients: dict[str, TokenBucket] = {}

    async def take(self, client: str) -> float:
        """0 when `client` may go now (and its turn is taken); else seconds until it may."""
        bucket = self._bucket(client)
        wait = bucket.delay()
        if wait > 0:
            return wait
        # A token is free, so this returns at once: the bucket never sleeps here.
        await bucket.acquire()
        return 0.0

    def _bucket(self, client: str) -> TokenBucket:
        bucket = self._clients.get(client)
        if bucket is not None:
            return bucket
        if len(self._clients) >= _MAX_IDLE_CLIENTS:
            self._clients = {name: kept for name, kept in self._clients.items() if not kept.idle}
        bucket = TokenBucket(rate=self._per_minute, per=60.0, burst=self._burst, clock=self._clock)
        self._clients[client] = bucket
        return bucket
