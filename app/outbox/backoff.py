"""When to try again after a temporary failure."""

from __future__ import annotations

import random

_jitter_source = random.Random()  # noqa: S311 (spreading retries needs no secrecy)


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter in its upper half: base·2^(attempt−1), capped.

    Jitter spreads a storm of 4xx replies so retries do not all arrive at once.
    """
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    jitter = (rng or _jitter_source).random()
    return ceiling * (0.5 + 0.5 * jitter)
