"""Internal: the capacity search's settings: where it starts, where it stops, when a step holds.

One frozen value object, :class:`SearchSettings`, parsed from the ``capacity_*`` run options
(locust flags ``--capacity-start`` …, ``loadkit capacity --start`` …, notebook keywords) by
:meth:`SearchSettings.parse`. Its :class:`Bounds` say when a step *holds*:

- achieved items/s ≥ ``min_achieved`` (95 %) of the items the step offered;
- p95 of the latency from the intended start ≤ ``latency_bound_ms``;
- dropped starts ≤ ``max_drop_rate`` (1 %) and failed batches ≤ ``max_error_rate`` (1 %);
- no contract violation.

**The latency bound's default** is ``auto``: the larger of 1,000 ms and 5 × the p95 of the
first step (the lowest load, where nothing queues). 1 s is a latency a batch producer notices
and far above a healthy generator's scheduling jitter (tens of ms on a busy 2-core machine);
5 × the unloaded p95 keeps large batches, whose transfer alone takes long, from failing on
their size instead of on load. Neither part decides where an overloaded target's knee falls:
a target that reads R items/s achieves at most R ÷ offered, so any step beyond R ÷ 0.95 fails
the 95 % rule whatever the latency bound and the machine's speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loadkit._parse import parse_float
from loadkit.errors import ConfigError

__all__ = ["AUTO", "Bounds", "SearchSettings"]

AUTO = "auto"
LATENCY_FLOOR_MS = 1000.0
"""The automatic latency bound is at least this many ms."""
LATENCY_FACTOR = 5.0
"""… and at least this many times the first step's p95 from the intended start."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """When a step holds (see the module docstring)."""

    min_achieved: float = 0.95
    latency_bound_ms: float | None = None
    """None: ``auto`` (fixed after the first step)."""
    max_drop_rate: float = 0.01
    max_error_rate: float = 0.01
    max_client_cpu: float = 0.9
    """Share of one core above which the load generator counts as saturated."""

    def latency_for(self, first_p95_ms: float | None) -> float:
        """The latency bound in force, given the first step's p95 (auto)."""
        if self.latency_bound_ms is not None:
            return self.latency_bound_ms
        if first_p95_ms is None or not math.isfinite(first_p95_ms):
            return LATENCY_FLOOR_MS
        return max(LATENCY_FLOOR_MS, LATENCY_FACTOR * first_p95_ms)

    def as_dict(self, latency_bound_ms: float | None = None) -> dict[str, Any]:
        return {"min_achieved": self.min_achieved,
                "latency_bound_ms": (latency_bound_ms if latency_bound_ms is not None
                                     else self.latency_bound_ms),
                "latency_bound": AUTO if self.latency_bound_ms is None else "fixed",
                "max_drop_rate": self.max_drop_rate, "max_error_rate": self.max_error_rate,
                "max_client_cpu": self.max_client_cpu}


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """The search: offered items/s from ``start`` up by ``growth`` each step until a step
    fails or ``max`` is reached, then bisection between the last step that held and the
    first that failed down to ``resolution``; never longer than ``max_seconds``."""

    start: float = 1000.0
    max: float | None = None
    step_seconds: float = 10.0
    resolution: float = 0.05
    max_seconds: float = 600.0
    growth: float = 2.0
    bounds: Bounds = field(default_factory=Bounds)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and self.start > 0):
            raise ConfigError("capacity_start", self.start, "items per second above 0")
        if self.max is not None and not (math.isfinite(self.max) and self.max >= self.start):
            raise ConfigError("capacity_max", self.max,
                              f"items per second of at least --capacity-start ({self.start:g})")
        if not 0.5 <= self.step_seconds <= 3600:
            raise ConfigError("step_seconds", self.step_seconds, "seconds from 0.5 to 3600")
        if not 0.001 <= self.resolution <= 0.5:
            raise ConfigError("resolution", self.resolution, "a fraction from 0.001 to 0.5, "
                              "e.g. 0.05 (5 %)")
        if not self.max_seconds >= self.step_seconds:
            raise ConfigError("capacity_max_seconds", self.max_seconds,
                              f"seconds of at least one step ({self.step_seconds:g})")
        if not 1.1 <= self.growth <= 10:
            raise ConfigError("capacity_growth", self.growth, "a factor from 1.1 to 10")

    @classmethod
    def parse(cls, *, start: object = None, max: object = None,
              step_seconds: object = None, resolution: object = None,
              max_seconds: object = None, growth: object = None,
              latency_bound: object = None) -> SearchSettings:
        """From the option strings (None or "": the default)."""
        def num(name: str, value: object, default: float) -> float:
            if value is None or str(value).strip() == "":
                return default
            return parse_float(name, value, 0.0, above=True)

        bound_text = "" if latency_bound is None else str(latency_bound).strip().lower()
        if bound_text in ("", AUTO):
            bound = None
        else:
            bound = parse_float("latency_bound", bound_text.removesuffix("ms"), 0.0, above=True)
        top = None if max is None or str(max).strip().lower() in ("", "none") else \
            num("capacity_max", max, 0.0)
        default = cls()
        return cls(
            start=num("capacity_start", start, default.start),
            max=top,
            step_seconds=num("step_seconds", step_seconds, default.step_seconds),
            resolution=num("resolution", resolution, default.resolution),
            max_seconds=num("capacity_max_seconds", max_seconds, default.max_seconds),
            growth=num("capacity_growth", growth, default.growth),
            bounds=Bounds(latency_bound_ms=bound),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "max": self.max, "step_seconds": self.step_seconds,
                "resolution": self.resolution, "max_seconds": self.max_seconds,
                "growth": self.growth}
