"""Internal: the capacity search as a state machine: which offered rate to try next.

:class:`Search` knows nothing of time or locust: it is told whether each step held and
answers the next offered items/s, until it has the knee. Up from ``start`` by ``growth``
while steps hold (capped at ``max``); after the first failure, bisection between the highest
rate that held and the lowest that failed, until they are within ``resolution`` of each
other. If the very first step fails, it steps down (at most three times) to find a rate
that holds; a search that never holds has no knee.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadkit.capacity_search.settings import SearchSettings

__all__ = ["Search"]

_DOWN_TRIES = 3


@dataclass(slots=True)
class Search:
    """Tell it each step's outcome with :meth:`record`; ask :meth:`next_rate`."""

    settings: SearchSettings
    held: float | None = None
    """The highest offered rate that held."""
    failed: float | None = None
    """The lowest offered rate that failed."""
    tried: list[tuple[float, bool]] = field(default_factory=list)
    reached_max: bool = False

    def next_rate(self) -> float | None:
        """The next offered items/s to try, or None when the search is over."""
        s = self.settings
        if not self.tried:
            return s.start
        if self.failed is None:  # still going up
            assert self.held is not None
            if s.max is not None and self.held >= s.max:
                self.reached_max = True
                return None
            up = self.held * s.growth
            return up if s.max is None else min(up, s.max)
        if self.held is None:  # nothing held yet: step down
            downs = sum(1 for _, ok in self.tried if not ok)
            return None if downs > _DOWN_TRIES else self.failed / s.growth
        if (self.failed - self.held) / self.held <= s.resolution:
            return None
        return (self.held + self.failed) / 2.0

    def record(self, rate: float, held: bool) -> None:
        """The step at ``rate`` held (or not)."""
        self.tried.append((rate, held))
        if held:
            self.held = rate if self.held is None else max(self.held, rate)
        else:
            self.failed = rate if self.failed is None else min(self.failed, rate)

    @property
    def knee(self) -> float | None:
        """The highest offered items/s that held (None: none did)."""
        return self.held
