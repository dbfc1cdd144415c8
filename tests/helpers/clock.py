"""A monotonic clock that only moves when someone sleeps: waits are asserted, never waited."""

from __future__ import annotations

from types import SimpleNamespace


class FakeClock:
    """``monotonic()`` and ``sleep()`` for code that takes them as arguments (or via ``time``)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def as_time_module(self) -> SimpleNamespace:
        """Stands in for the ``time`` module of code that calls ``time.monotonic``/``time.sleep``."""
        return SimpleNamespace(monotonic=self.monotonic, sleep=self.sleep)
