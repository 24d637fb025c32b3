"""Internal: vectorised bootstraps (numpy only): over batches for percentiles, over blocks of
time windows for ratios of sums.

Percentiles (bootstrap over batches). Resampling ``n`` batches with replacement from a run
is the same as drawing ``n`` uniforms and mapping each through the run's empirical quantile
function; that function is monotone, so the resample's k-th smallest value is the quantile
function applied to the k-th smallest of ``n`` uniforms, which is ``Beta(k, n − k + 1)``.
:func:`percentile_draws` draws that order statistic (and the next one, for numpy's linear
interpolation between ranks) directly: the exact distribution of the bootstrap percentile in
O(resamples), whatever the number of batches, instead of materialising resamples.

Percentiles when slow batches cluster in time. Resampling single batches assumes they are
independent; on a shared machine they are not (a busy second makes a run of slow batches),
and the interval comes out too narrow. The variance of a percentile estimate is that of the
share of batches above it, divided by the density there squared (Woodruff), so the ratio of
the share's block-bootstrap variance (over time windows, as below) to its binomial variance
— the design effect — is the factor by which clustering widens it. :func:`design_effect`
measures it from per-window counts of batches above the run's own percentile; the batch
draws are then stretched about the point by its square root (never narrowed: at least 1), on
a log scale, so that a latency's draws stay above 0 however wide the stretch.

Ratios of sums (a circular moving-block bootstrap over time windows). Figures such as items/s
or the error rate are sums over the run divided by sums over the run; windows next to each
other are correlated (a slow second slows every batch in it), so resampling batches, or
single windows, would make the interval too narrow. :func:`block_indices` resamples runs of
``L ≈ W^⅓`` consecutive windows (wrapping around), the usual block length for a variance.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RESAMPLES", "block_indices", "block_length", "design_effect", "percentile_draws",
           "percentile_point", "ratio_draws"]

RESAMPLES = 4000
"""Bootstrap resamples per side; the 2.5 % and 97.5 % points of 4,000 draws move by about
0.1 standard errors between seeds."""


def block_length(windows: int) -> int:
    """Block length for ``windows`` windows: round(W^⅓), at least 1."""
    return max(1, round(windows ** (1 / 3)))


def block_indices(rng: np.random.Generator, windows: int,
                  resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples × windows`` window indices: circular blocks of :func:`block_length`
    consecutive windows, as many as fill ``windows``."""
    if windows <= 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    length = block_length(windows)
    blocks = math.ceil(windows / length)
    starts = rng.integers(0, windows, size=(resamples, blocks))
    idx = (starts[:, :, None] + np.arange(length)) % windows
    return idx.reshape(resamples, blocks * length)[:, :windows]


def ratio_draws(numerator: np.ndarray, denominator: np.ndarray,
                idx: np.ndarray) -> np.ndarray:
    """Σ numerator ÷ Σ denominator over each resample's windows (NaN where Σ denominator
    is 0)."""
    num = np.asarray(numerator, dtype=float)[idx].sum(axis=1)
    den = np.asarray(denominator, dtype=float)[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _at_rank(values: np.ndarray, cum: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The value of 0-based rank ``rank`` in the sorted sample ``values`` × counts."""
    return values[np.searchsorted(cum, rank, side="right")]


def percentile_point(values: np.ndarray, counts: np.ndarray, p: float) -> float:
    """Percentile ``p`` of the sample where ``values[i]`` (ascending) occurs ``counts[i]``
    times, linearly interpolated between the closest ranks (numpy's default); NaN if empty."""
    cum = np.cumsum(counts)
    n = int(cum[-1]) if cum.size else 0
    if n == 0:
        return math.nan
    h = (n - 1) * p / 100.0
    k = math.floor(h)
    lo, hi = _at_rank(values, cum, np.array([k, min(k + 1, n - 1)]))
    return float(lo + (h - k) * (hi - lo))


def percentile_draws(rng: np.random.Generator, values: np.ndarray, counts: np.ndarray,
                     p: float, resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples`` bootstrap draws of percentile ``p`` (as :func:`percentile_point`) of
    resamples of all ``n`` values with replacement, drawn exactly through the order
    statistics of uniforms (see the module docstring)."""
    cum = np.cumsum(counts)
    n = int(cum[-1]) if cum.size else 0
    if n == 0:
        return np.full(resamples, np.nan)
    h = (n - 1) * p / 100.0
    k = math.floor(h)
    frac = h - k
    u_lo = rng.beta(k + 1, n - k, size=resamples)  # the (k+1)-th smallest of n uniforms
    rest = n - k - 1  # the next one: the smallest of the rest, uniform above u_lo
    u_hi = u_lo + (1 - u_lo) * (1 - rng.random(resamples) ** (1.0 / rest)) if rest else u_lo

    def quantile(u: np.ndarray) -> np.ndarray:
        rank = np.clip(np.ceil(u * n) - 1, 0, n - 1).astype(np.int64)
        return _at_rank(values, cum, rank)

    lo = quantile(u_lo)
    return lo + frac * (quantile(u_hi) - lo) if frac else lo


def design_effect(above: np.ndarray, counted: np.ndarray, idx: np.ndarray) -> float:
    """Block-bootstrap variance of Σ above ÷ Σ counted over windows ``idx``, divided by its
    binomial variance: how much time clustering widens a percentile's interval (≥ 1)."""
    n = float(np.sum(counted))
    share = float(np.sum(above)) / n if n else math.nan
    if not n or idx.shape[1] < 2 or share in (0.0, 1.0) or math.isnan(share):
        return 1.0
    draws = ratio_draws(above, counted, idx)
    block_var = float(np.nanvar(draws))
    return max(1.0, block_var / (share * (1 - share) / n))
