"""Shared by the bench scripts: interleaved rounds, their median and spread, ``--json``.

One run of a bench on a shared machine gives a figure that wanders from run to run. Every
script here therefore measures in *rounds*:

- :func:`interleave` runs one warm-up round of every variant (discarded: imports, pools,
  connections, page cache), then ``--rounds`` rounds in which the variants run one after the
  other: in the order A B … in even rounds, … B A in odd ones (ABBA: a machine that drifts
  over time favours no variant);
- each round pairs ours with the baseline run next to it: a round's ratio is ours ÷ baseline
  of that round (:func:`ratios`), and the figure is the **median of the rounds' ratios**,
  printed on the bench's summary line, with its spread on the line under it
  (:meth:`Figure.spread_line`: ``spread (N rounds): min–max A–B, IQR C–D``);
- :class:`Report` collects the figures and ``--json PATH`` writes them for
  ``bench/run_all.py``: ``{"bench": ..., "figures": [{"name", "median", "min", "max", "q1",
  "q3", "target", "met", "rounds", "values", ...}]}``.

Typical use::

    parser = argparse.ArgumentParser()
    _rounds.add_arguments(parser, default=20, aliases=("--runs",), per_round="~0.4 s")
    args = parser.parse_args()
    report = _rounds.Report("mybench")
    got = _rounds.interleave({"ours": ours, "baseline": base}, args.rounds)
    print(got.timing_line())
    fig = report.add("ratio ours / baseline", _rounds.ratios(got["ours"], got["baseline"]),
                     target=_rounds.at_least(1.0))
    print(f"ratio ours / baseline: {fig.median:.2f}  (target >= 1.0)")
    print(fig.spread_line())
    report.write(args.json)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = [
    "Figure",
    "Report",
    "Rounds",
    "Spread",
    "Target",
    "add_arguments",
    "at_least",
    "at_most",
    "interleave",
    "ratios",
    "spread",
    "spread_line",
    "within",
]


# --- running rounds ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, *, default: int, aliases: Sequence[str] = (),
                  per_round: str = "", warmup: bool = True) -> None:
    """``--rounds N`` (``aliases``, e.g. an older ``--runs``, set the same value) and
    ``--json PATH``."""
    cost = f"; {per_round} per round at the default sizes" if per_round else ""
    before = "after one discarded warm-up round, " if warmup else ""
    parser.add_argument(
        "--rounds", *aliases, dest="rounds", type=int, default=default, metavar="N",
        help=f"{before}rounds of every variant, alternating (default {default}{cost}); the "
             "figure is the median over the rounds, shown with its spread")
    parser.add_argument("--json", dest="json", default=None, metavar="PATH",
                        help="also write the figures (median, spread, target, met) as JSON "
                             "to PATH (read by bench/run_all.py)")


@dataclass
class Rounds(Generic[T]):
    """What :func:`interleave` measured: per variant, one result per round (in round
    order), and how long each round took."""

    values: dict[str, list[T]]
    seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0
    warmed_up: bool = True
    cut_short: bool = False
    """``max_seconds`` ran out before the rounds asked for were done."""

    def __getitem__(self, name: str) -> list[T]:
        return self.values[name]

    def __len__(self) -> int:
        return len(self.seconds)

    def timing_line(self) -> str:
        """``rounds: 5 (after a discarded warm-up round), order ABBA; 0.42 s per round``."""
        n = len(self.seconds)
        per = statistics.mean(self.seconds) if self.seconds else math.nan
        warm = (f" (after a discarded warm-up round of {self.warmup_seconds:.2f} s)"
                if self.warmed_up else "")
        order = ", variants alternating (ABBA)" if len(self.values) > 1 else ""
        cut = "; stopped early: its time limit was reached" if self.cut_short else ""
        return f"rounds: {n}{warm}{order}; {per:.2f} s per round{cut}"


def interleave(variants: Mapping[str, Callable[[], T]], rounds: int, *,
               warmup: bool | Mapping[str, Callable[[], object]] = True,
               max_seconds: float | None = None,
               after_round: Callable[[int, dict[str, T]], None] | None = None) -> Rounds[T]:
    """Run every variant once per round, ``rounds`` times, after a warm-up round.

    ``warmup``: True runs each variant once first and throws the result away; a mapping
    gives the callable to warm each variant up with instead (e.g. a shorter run); False
    skips it (a bench with a single variant that needs none). Even rounds run the variants
    in the order given, odd rounds in reverse (ABBA). ``max_seconds`` stops adding rounds
    once that many seconds of rounds have passed (at least one round runs).
    ``after_round(i, {name: result})`` is called after each round (progress lines).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    names = list(variants)
    t0 = time.perf_counter()
    if warmup:
        warm: Mapping[str, Callable[[], object]] = (
            variants if isinstance(warmup, bool) else warmup)
        for name in names:
            warm[name]()
    out: Rounds[T] = Rounds({name: [] for name in names},
                            warmup_seconds=time.perf_counter() - t0, warmed_up=bool(warmup))
    start = time.perf_counter()
    for i in range(rounds):
        r0 = time.perf_counter()
        got: dict[str, T] = {}
        for name in names if i % 2 == 0 else names[::-1]:
            got[name] = variants[name]()
        for name in names:
            out.values[name].append(got[name])
        out.seconds.append(time.perf_counter() - r0)
        if after_round is not None:
            after_round(i, got)
        if max_seconds is not None and i + 1 < rounds and \
                time.perf_counter() - start > max_seconds:
            out.cut_short = True
            break
    return out


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios: ``numerators[i] / denominators[i]`` (NaN where it has none)."""
    return [n / d if d else math.nan for n, d in zip(numerators, denominators, strict=True)]


# --- median and spread ----------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Median, min, max and quartiles of a figure's per-round values (NaNs left out)."""

    n: int
    median: float
    lo: float
    hi: float
    q1: float
    q3: float


def spread(values: Sequence[float]) -> Spread:
    xs = sorted(float(v) for v in values if v is not None and not math.isnan(v))
    if not xs:
        return Spread(0, *(math.nan,) * 5)
    if len(xs) == 1:
        q1 = q3 = xs[0]
    else:  # the quartiles as numpy's default (linear) computes them
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return Spread(len(xs), statistics.median(xs), xs[0], xs[-1], q1, q3)


def spread_line(values: Sequence[float] | Spread, fmt: str = ".2f", unit: str = "") -> str:
    """``spread (N rounds): min–max A–B, IQR C–D`` (``unit`` after each range)."""
    s = values if isinstance(values, Spread) else spread(values)

    def rng(a: float, b: float) -> str:  # "-3.1 to +2.0" (an en dash after a minus misleads)
        dash = " to " if a < 0 else "–"
        return f"{a:{fmt}}{dash}{b:{fmt}}{unit}"

    return (f"spread ({s.n} round{'' if s.n == 1 else 's'}): min–max {rng(s.lo, s.hi)}, "
            f"IQR {rng(s.q1, s.q3)}")


# --- figures, targets, --json -------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A figure's target: its text as the bench prints it and the bounds it means."""

    text: str
    low: float | None = None
    high: float | None = None

    def met(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        return (self.low is None or value >= self.low) and \
            (self.high is None or value <= self.high)


def at_least(value: float, text: str | None = None) -> Target:
    return Target(text or f">= {value:g}", low=value)


def at_most(value: float, text: str | None = None) -> Target:
    return Target(text or f"<= {value:g}", high=value)


def within(low: float, high: float, text: str | None = None) -> Target:
    return Target(text or f"{low:g} to {high:g}", low=low, high=high)


@dataclass
class Figure:
    """One figure of a bench: its per-round values, and its target if it has one."""

    name: str
    values: list[float]
    target: Target | None = None
    unit: str = ""
    fmt: str = ".2f"
    note: str | None = None

    @property
    def stats(self) -> Spread:
        return spread(self.values)

    @property
    def median(self) -> float:
        return self.stats.median

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.median)

    def spread_line(self) -> str:
        return spread_line(self.stats, self.fmt, self.unit)

    def as_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.name, "median": _num(s.median), "min": _num(s.lo),
            "max": _num(s.hi), "q1": _num(s.q1), "q3": _num(s.q3),
            "target": self.target.text if self.target else None, "met": self.met,
            "rounds": s.n, "unit": self.unit, "fmt": self.fmt,
            "values": [_num(v) for v in self.values], "note": self.note,
        }


def _num(v: float | None) -> float | None:
    """JSON has no NaN: None instead."""
    return None if v is None or math.isnan(v) else float(v)


class Report:
    """The figures of one bench run, written as JSON by :meth:`write` (``--json PATH``)."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []
        self.info: dict[str, Any] = {}

    def add(self, name: str, values: Sequence[float], *, target: Target | None = None,
            unit: str = "", fmt: str = ".2f", note: str | None = None) -> Figure:
        fig = Figure(name, [float(v) for v in values], target, unit, fmt, note)
        self.figures.append(fig)
        return fig

    def write(self, path: str | Path | None) -> None:
        """Write the figures to ``path`` (nothing when it is None)."""
        if not path:
            return
        data = {"bench": self.bench, "argv": sys.argv[1:], "info": self.info,
                "figures": [f.as_dict() for f in self.figures]}
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
