"""The one backoff rule: doubling, capped, jitter only ever below the ceiling."""

from __future__ import annotations

import random

import pytest

from core.backoff import backoff_s, schedule


def test_delays_double_from_first_and_stop_at_the_cap() -> None:
    assert [backoff_s(n, first=0.25, cap=1.5, jitter=0) for n in range(1, 6)] == [
        0.25,
        0.5,
        1.0,
        1.5,
        1.5,
    ]


def test_jitter_draws_between_the_fixed_share_and_the_ceiling() -> None:
    rng = random.Random(7)
    draws = [backoff_s(4, first=1.0, cap=100.0, jitter=0.5, rng=rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in draws)
    assert max(draws) - min(draws) > 2.0  # really drawn, not a constant


def test_attempts_below_one_wait_the_first_delay() -> None:
    assert backoff_s(0, first=3.0, jitter=0) == backoff_s(1, first=3.0, jitter=0) == 3.0


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_s(1, first=1.0, jitter=1.5)


def test_schedule_lists_the_prefect_retry_delays() -> None:
    assert schedule(4, first=2.0, cap=10.0) == [2.0, 4.0, 8.0, 10.0]
    assert schedule(0, first=2.0) == []
