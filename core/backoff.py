"""The one backoff rule of the project: exponential delays, capped, with jitter below the ceiling.

Every repeat after a failure (a step's retry, an HTTP call to Freepik or Shopify, the webhook's
dispatcher, the event sender, the job tables during a database restart) waits ``backoff_s``:
``first`` doubling per attempt up to ``cap``. Jitter draws part of the delay at random so that
replicas which failed together do not retry together; it only ever shortens the wait, so
``cap`` stays a true upper bound.
"""

from __future__ import annotations

import random

__all__ = ["backoff_s", "schedule"]


def backoff_s(
    attempt: int,
    *,
    first: float,
    cap: float = float("inf"),
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, …).

    Args:
        attempt: how many attempts have failed so far (values below 1 count as 1).
        first: the wait after the first failure, before jitter.
        cap: the longest wait.
        jitter: share of the wait drawn at random (0: exact; 0.5: between half and all of it).
        rng: source of randomness (tests pass a seeded one).

    >>> [backoff_s(n, first=0.5, cap=3.0, jitter=0) for n in (1, 2, 3, 4, 5)]
    [0.5, 1.0, 2.0, 3.0, 3.0]
    >>> 1.0 <= backoff_s(3, first=0.5, jitter=0.5) <= 2.0
    True
    """
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    ceiling = min(cap, first * 2 ** (max(attempt, 1) - 1))
    if jitter == 0:
        return ceiling
    return ceiling * (1 - jitter) + (rng or random).uniform(0, ceiling * jitter)


def schedule(retries: int, *, first: float, cap: float = float("inf")) -> list[float]:
    """The un-jittered waits before each of ``retries`` retries (Prefect adds its own jitter).

    >>> schedule(3, first=2.0)
    [2.0, 4.0, 8.0]
    """
    return [backoff_s(n, first=first, cap=cap, jitter=0) for n in range(1, retries + 1)]
