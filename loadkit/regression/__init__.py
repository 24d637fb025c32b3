"""Regression gate: is a run worse than a known-good baseline, beyond the noise?

::

    from loadkit import regression
    result = regression.gate("results/<new run>", "baseline.json")   # or a run directory
    print(result.table)               # the verdict first, then one row per figure
    result.passed, result.exit_code   # True/0, or False/3
    regression.compare(run_b, run_a)  # the DataFrame behind the table (also run_b.compare)
    regression.write_baseline("results/<good run>", "baseline.json")

Command line: ``loadkit compare A B``, ``loadkit check RUN --baseline BASE [--tolerance
'p95(total_ms)=10%' …]``, ``loadkit check RUN --write-baseline FILE`` and ``loadkit smoke
--baseline BASE``.

**Figures** (:data:`FIGURES`): items/s, MB/s, p50/p95/p99 of total, create and stream ms,
stall share, seal rate, error rate, retries per batch, 429s per batch, violations. Each row
gives the baseline, the candidate, the change (relative for rates and latencies; absolute, in
percentage points, for shares and per-batch figures, whose baseline is often 0), a 95 %
interval of the change, and a verdict: ``worse`` or ``better`` when the whole interval lies
beyond the figure's tolerance on that side, else ``same``; ``missing`` when one side lacks
the figure (reported, never a failure).

**The intervals** are bootstraps, each side resampled independently (4,000 draws, a fixed
seed: the same runs give the same table):

- latency percentiles: over batches (each run's batches resampled with replacement; done
  exactly through order statistics, :mod:`loadkit.regression.bootstrap`), stretched by the
  square root of the design effect when slow batches cluster in time (never narrowed; on
  a log scale, so a latency's draws stay above 0);
- rates and shares (items/s, MB/s, stall share, seal and error rates, retries and 429s per
  batch): a circular block bootstrap over about 30 time windows of the run, blocks of
  ≈ W^⅓ windows, so that correlation inside a run (a slow second slows every batch in it)
  does not make the interval too narrow;
- violations: an exact count (no interval).

**The gate** (:func:`gate`; :data:`DEFAULT_GATE`) fails — exit code 3 — when a gated figure
is worse beyond its tolerance with confidence, i.e. the whole 95 % interval is beyond it:
p95(total_ms) and items_per_s with 10 %, error_rate and seal_rate with none (the error rate
must not rise, the seal rate must not drop), violations must stay 0 (any new one fails).
``--tolerance FIGURE=VALUE`` changes a tolerance, gates a further figure, or with ``off``
removes one; a percentage is relative for rates and latencies and percentage points for
shares. Noise is measured, not assumed: the README gives the false-positive and detection
rates (tests/regression, bench/regression.py).

**A baseline** is a run directory or a ``baseline.json`` (a few kB, to commit next to a
project's code) written by ``loadkit check RUN --write-baseline FILE`` or
:func:`write_baseline`. It keeps exactly what the comparison needs to stay honest:

- ``loadkit_baseline`` (the file's format, 1) and ``schema_version`` (the records'; a
  baseline of another version is refused: exit 2, one line naming the file), ``run_id``,
  ``source``, ``created_at``, ``batches``, ``duration_s``;
- ``window_s`` and ``windows``: per time window (by batch end; the run's span cut into about
  30 equal windows) the sums ``seconds``, ``batches``, ``items``, ``bytes``, ``sealed``,
  ``failed``, ``retries``, ``rate_limited``, ``violations``, ``stall_ms``, ``stream_ms``:
  every rate and share is a ratio of these sums, and the block bootstrap resamples windows;
  and per latency field ``n(FIELD)`` (batches with a value) and ``above_pNN(FIELD)``
  (batches above the run's own p50/p95/p99): how much slow batches cluster in time, which
  widens the percentiles' intervals (the design effect);
- ``latency``: for ``total_ms``, ``create_ms`` and ``stream_ms``, a histogram of every
  batch's value on 230 log-spaced bins per decade (``bins`` numbers, ``counts``), each bin
  1 % wide: percentiles within ±0.5 % of the exact ones, and the bootstrap over batches
  needs only the counts;
- ``settings``: what decides what a run measures (the target — never its key —, model,
  users, run time and every run option but paths, thresholds and ids). Differing settings
  are noted under the table, not refused: comparing a change of setting is a use too.

A baseline with no batches is refused (exit 2); a figure it lacks (a run that never
streamed has no stream latency) is reported as ``missing``.
"""

from __future__ import annotations

from loadkit.regression.digest import (
    BASELINE_FORMAT,
    BaselineError,
    Digest,
    digest,
    load_baseline,
    run_digest,
    write_baseline,
)
from loadkit.regression.figures import DEFAULT_GATE, FIGURE_KEYS, FIGURES, Figure
from loadkit.regression.gate import (
    GateResult,
    ToleranceError,
    compare,
    format_table,
    gate,
    parse_tolerances,
)

__all__ = [
    "BASELINE_FORMAT",
    "DEFAULT_GATE",
    "FIGURES",
    "FIGURE_KEYS",
    "BaselineError",
    "Digest",
    "Figure",
    "GateResult",
    "ToleranceError",
    "compare",
    "digest",
    "format_table",
    "gate",
    "load_baseline",
    "parse_tolerances",
    "run_digest",
    "write_baseline",
]
