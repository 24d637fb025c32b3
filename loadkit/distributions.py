"""Internal: integer distributions written as short strings: ``"100"``, ``"uniform:1:1000"``,
``"lognormal:512:1.0"``, ``"pareto:100:1.5"``, ``"choice:10,100,1000"``.

One parser serves locust flags, CLI arguments and notebook keywords. Draws are vectorised
with numpy so a 1,000-item batch costs microseconds, and are reproducible from a
``numpy.random.Generator``.

Forms:

- ``N`` or ``fixed:N`` — always N.
- ``uniform:LO:HI`` — integers uniform in [LO, HI], both included.
- ``lognormal:MEDIAN:SIGMA`` — log-normal with the given median (``exp(mu)``) and sigma.
- ``pareto:MIN:ALPHA`` — Pareto (type I) with scale MIN and shape ALPHA; heavy-tailed.
- ``choice:A,B,C`` — one of the listed values, equally likely; ``choice:A*3,B`` weights A 3:1.

Unbounded forms are clipped to the bounds of the field they describe (for example 1 to the
server's maximum items per batch); bounded forms outside those bounds are rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loadkit.errors import ConfigError

__all__ = ["FORMS", "Dist"]

FORMS = "N, fixed:N, uniform:LO:HI, lognormal:MEDIAN:SIGMA, pareto:MIN:ALPHA or choice:A,B,C"


@dataclass(frozen=True, slots=True)
class Dist:
    """A distribution of non-negative integers, as parsed from its string form."""

    kind: str
    params: tuple[float, ...]
    weights: tuple[float, ...] = ()

    # --- construction ------------------------------------------------------------------

    @classmethod
    def fixed(cls, value: int) -> Dist:
        return cls("fixed", (float(value),))

    @classmethod
    def parse(
        cls, text: str | int | Dist, *, field: str, low: int = 0, high: int | None = None
    ) -> Dist:
        """Parse ``text`` for the setting ``field`` whose values must lie in [low, high]."""
        if isinstance(text, Dist):
            dist = text
        elif isinstance(text, bool):
            raise ConfigError(field, text, FORMS)
        elif isinstance(text, int):
            dist = cls.fixed(text)
        elif isinstance(text, str):
            dist = cls._parse_str(text.strip(), field)
        else:
            raise ConfigError(field, text, FORMS)
        dist._check_bounds(field, low, high)
        return dist

    @classmethod
    def _parse_str(cls, text: str, field: str) -> Dist:
        kind, _, rest = text.partition(":")
        kind = kind.lower()
        try:
            if not rest:
                return cls.fixed(_int(kind))
            if kind == "fixed":
                return cls.fixed(_int(rest))
            if kind == "choice":
                values: list[float] = []
                weights: list[float] = []
                for part in rest.split(","):
                    value, star, weight = part.strip().partition("*")
                    values.append(float(_int(value)))
                    weights.append(float(weight) if star else 1.0)
                if not values or any(w <= 0 or not math.isfinite(w) for w in weights):
                    raise ValueError
                return cls("choice", tuple(values), tuple(weights))
            parts = rest.split(":")
            if len(parts) != 2:
                raise ValueError
            if kind == "uniform":
                lo, hi = _int(parts[0]), _int(parts[1])
                if lo > hi:
                    raise ValueError
                return cls("uniform", (float(lo), float(hi)))
            if kind in ("lognormal", "pareto"):
                a, b = float(parts[0]), float(parts[1])
                if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                    raise ValueError
                return cls(kind, (a, b))
        except ValueError:
            pass
        raise ConfigError(field, text, FORMS)

    def _check_bounds(self, field: str, low: int, high: int | None) -> None:
        bounded = {
            "fixed": self.params,
            "uniform": self.params,
            "choice": self.params,
        }.get(self.kind, (self.params[0],))
        for value in bounded:
            if value < low or (high is not None and value > high):
                limit = f"{low} to {high}" if high is not None else f"{low} or more"
                raise ConfigError(field, str(self), f"values from {limit} ({FORMS})")

    # --- drawing -----------------------------------------------------------------------

    def sample(
        self, rng: np.random.Generator, n: int, *, low: int = 0, high: int | None = None
    ) -> np.ndarray:
        """Draw ``n`` integers (int64), clipped to [low, high]."""
        p = self.params
        if self.kind == "fixed":
            out = np.full(n, int(p[0]), dtype=np.int64)
        elif self.kind == "uniform":
            out = rng.integers(int(p[0]), int(p[1]) + 1, size=n, dtype=np.int64)
        elif self.kind == "lognormal":
            out = np.rint(rng.lognormal(math.log(p[0]), p[1], size=n)).astype(np.int64)
        elif self.kind == "pareto":
            # numpy's pareto is Lomax (type II); shifting by 1 gives type I with scale p[0].
            out = np.rint(p[0] * (rng.pareto(p[1], size=n) + 1.0)).astype(np.int64)
        else:  # choice
            w = np.asarray(self.weights) / sum(self.weights)
            out = np.asarray(self.params, dtype=np.int64)[rng.choice(len(p), size=n, p=w)]
        return np.clip(out, low, high if high is not None else np.iinfo(np.int64).max)

    def draw(self, rng: np.random.Generator, *, low: int = 0, high: int | None = None) -> int:
        return int(self.sample(rng, 1, low=low, high=high)[0])

    @property
    def mean(self) -> float:
        """The distribution's mean before clipping (pareto with alpha ≤ 1 has none: inf)."""
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2
        if self.kind == "lognormal":
            return p[0] * math.exp(p[1] ** 2 / 2)
        if self.kind == "pareto":
            return math.inf if p[1] <= 1 else p[1] * p[0] / (p[1] - 1)
        total = sum(self.weights)
        return sum(v * w for v, w in zip(self.params, self.weights, strict=True)) / total

    def __str__(self) -> str:
        p = self.params
        if self.kind == "fixed":
            return str(int(p[0]))
        if self.kind == "uniform":
            return f"uniform:{int(p[0])}:{int(p[1])}"
        if self.kind == "choice":
            parts = [
                f"{int(v)}" if w == 1.0 else f"{int(v)}*{w:g}"
                for v, w in zip(p, self.weights, strict=True)
            ]
            return "choice:" + ",".join(parts)
        return f"{self.kind}:{p[0]:g}:{p[1]:g}"


def _int(text: str) -> int:
    text = text.strip().replace("_", "")
    # accept "1e3" and "1000.0" only when they are whole numbers
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)
