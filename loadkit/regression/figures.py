"""Internal: the key figures a regression check compares, and how each one is measured.

Each :class:`Figure` says what it is computed from (a ratio of per-window sums, a percentile of
a latency histogram, or an exact count), which direction is better, and whether its change is
relative (``cand ÷ base − 1``: rates and latencies) or absolute (``cand − base``: shares and
per-batch counts, whose baseline is often 0).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_GATE", "FIGURES", "FIGURE_KEYS", "LATENCY_FIELDS", "PERCENTILES", "Figure",
           "figure"]

LATENCY_FIELDS: tuple[str, ...] = ("total_ms", "create_ms", "stream_ms")
"""Record fields whose distribution a digest keeps as a histogram."""
PERCENTILES: tuple[float, ...] = (50, 95, 99)
"""The percentiles compared of each latency field."""


@dataclass(frozen=True, slots=True)
class Figure:
    """One key figure of a run."""

    key: str
    """Its name on the command line (``--tolerance KEY=…``) and in tables."""
    label: str
    unit: str
    """``items/s``, ``MB/s``, ``ms``, ``share`` (shown in %), ``per batch`` or ``count``."""
    higher_is_better: bool
    kind: str
    """``ratio`` (numerator ÷ denominator of window sums: block bootstrap over windows),
    ``percentile`` (of a latency histogram: bootstrap over batches) or ``count`` (exact)."""
    relative: bool
    """True: the change is ``cand ÷ base − 1``; False: ``cand − base``."""
    numerator: str = ""
    denominator: str = ""
    field: str = ""
    percentile: float = 0.0
    scale: float = 1.0
    """Numerator factor (bytes → MB)."""
    old_row: str = ""
    """The row of :func:`loadkit.analysis.compare` this figure adds its interval to."""
    tolerance: float | None = None
    """Its tolerance when none is given; None: 10 % for a relative figure, else 0."""

    @property
    def default_tolerance(self) -> float:
        """10 % for performance figures (relative), none for correctness figures."""
        if self.tolerance is not None:
            return self.tolerance
        return 0.10 if self.relative else 0.0


def _pct(p: float, field: str) -> Figure:
    name = field.removesuffix("_ms")
    return Figure(f"p{p:g}({field})", f"p{p:g} {name}", "ms", False, "percentile", True,
                  field=field, percentile=p, old_row=f"{field}_p{p:g}")


FIGURES: tuple[Figure, ...] = (
    Figure("items_per_s", "items/s", "items/s", True, "ratio", True, "items", "seconds",
           old_row="items_per_s"),
    Figure("mb_per_s", "MB/s", "MB/s", True, "ratio", True, "bytes", "seconds", scale=1e-6,
           old_row="mb_per_s"),
    *(_pct(p, f) for f in LATENCY_FIELDS for p in PERCENTILES),
    Figure("stall_share", "stall share", "share", False, "ratio", False, "stall_ms",
           "stream_ms", old_row="stalled_share", tolerance=0.01),
    Figure("seal_rate", "seal rate", "share", True, "ratio", False, "sealed", "batches",
           old_row="seal_rate"),
    Figure("error_rate", "error rate", "share", False, "ratio", False, "failed", "batches",
           old_row="error_rate"),
    Figure("retries_per_batch", "retries per batch", "per batch", False, "ratio", False,
           "retries", "batches", old_row="retries_per_batch"),
    Figure("rate_limited_per_batch", "429s per batch", "per batch", False, "ratio", False,
           "rate_limited", "batches", old_row="rate_limited_per_batch"),
    Figure("violations", "violations", "count", False, "count", False, "violations",
           old_row="violations"),
)
"""Every key figure, in the order tables list them."""

FIGURE_KEYS: tuple[str, ...] = tuple(f.key for f in FIGURES)
_BY_KEY = {f.key: f for f in FIGURES}

DEFAULT_GATE: dict[str, float] = {
    "p95(total_ms)": 0.10,
    "items_per_s": 0.10,
    "error_rate": 0.0,
    "seal_rate": 0.0,
    "violations": 0.0,
}
"""What ``loadkit check --baseline`` gates on when no ``--tolerance`` is given: 10 % for the
performance figures; none for correctness (the seal rate must not drop, the error rate must
not rise, violations must stay 0)."""


def figure(key: str) -> Figure:
    """The figure named ``key`` (KeyError when there is none)."""
    return _BY_KEY[key]
