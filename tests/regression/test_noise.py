"""Noise is measured, not assumed: false-positive and detection rates on synthetic runs."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.regression import compare, digest, gate
from loadkit.regression.bootstrap import percentile_draws, percentile_point

TRIALS = 200


def _trials(synth, scale: float) -> list:
    """200 gates (default tolerances) of a candidate run against a baseline run, 4,000
    batches each, the candidate's latencies ``scale`` × the baseline's distribution."""
    rng = np.random.default_rng(7)
    return [gate(digest(synth(rng, scale=scale)), digest(synth(rng)), seed=trial,
                 resamples=1000) for trial in range(TRIALS)]


@pytest.fixture(scope="module")
def same(synth):
    """200 gates of two runs drawn from the same distribution."""
    return _trials(synth, 1.0)


def test_same_distribution_is_flagged_in_at_most_5_percent_of_200_trials(same):
    """Same distribution, default gate: flagged in ≤ 5 % of 200 trials."""
    flagged = sum(not r.passed for r in same)
    assert flagged / TRIALS <= 0.05, flagged


def test_interval_is_calibrated_with_zero_tolerance(same):
    """With zero tolerance each side's miss rate stays near its 2.5 %: the interval itself is
    not too narrow (≤ 5 % of 200 trials wholly above 0 for p95, wholly below for items/s)."""
    p95 = sum(r.frame.at["p95(total_ms)", "ci_low"] > 0 for r in same)
    items = sum(r.frame.at["items_per_s", "ci_high"] < 0 for r in same)
    assert p95 / TRIALS <= 0.05, p95
    assert items / TRIALS <= 0.05, items


def test_20_percent_slower_p95_is_flagged_in_at_least_95_percent_of_200_trials(synth):
    """Every latency 20 % longer (p95 +20 %), 6,000 batches a side: flagged in ≥ 95 %."""
    results = _trials(synth, 1.2)
    p95 = sum(r.frame.at["p95(total_ms)", "verdict"] == "worse" for r in results)
    assert p95 / TRIALS >= 0.95, p95
    assert all(not r.passed for r in results if
               r.frame.at["p95(total_ms)", "verdict"] == "worse")


def test_order_statistic_bootstrap_matches_resampling_batches():
    """The exact percentile bootstrap gives the same interval as resampling batches."""
    rng = np.random.default_rng(3)
    values = np.sort(rng.integers(1, 400, size=500).astype(float))
    uniq, counts = np.unique(values, return_counts=True)
    fast = percentile_draws(rng, uniq, counts, 95, 20_000)
    naive = np.percentile(rng.choice(values, size=(20_000, values.size)), 95, axis=1)
    assert percentile_point(uniq, counts, 95) == pytest.approx(np.percentile(values, 95))
    for q in (2.5, 50, 97.5):
        assert np.percentile(fast, q) == pytest.approx(np.percentile(naive, q), rel=0.02)


def test_a_figure_missing_from_the_baseline_is_missing_not_a_failure(synth):
    """A baseline without create latencies reports p95(create_ms) as missing and passes."""
    rng = np.random.default_rng(1)
    base = synth(rng)
    base["create_ms"] = np.nan
    result = gate(digest(synth(rng)), digest(base), ["p95(create_ms)=10%"])
    assert result.frame.at["p95(create_ms)", "verdict"] == "missing"
    assert result.passed
    assert result.frame.at["p95(total_ms)", "verdict"] == "same"


def test_correctness_figures_have_no_tolerance(synth):
    """Failures spread over the candidate run fail the gate on error_rate and seal_rate."""
    rng = np.random.default_rng(2)
    cand = synth(rng)
    cand.loc[cand.index % 50 == 0, "outcome"] = "failed"
    result = gate(digest(cand), digest(synth(rng)))
    assert set(result.failures) == {"error_rate", "seal_rate"}
    assert result.table.startswith("regression check: FAILED (exit code 3) — ")
    assert "+2.00 pp" in result.table


def test_a_new_violation_fails_the_gate(synth):
    """One contract violation in the candidate fails the gate (violations must stay 0)."""
    rng = np.random.default_rng(4)
    cand = synth(rng)
    cand.loc[10, "violations"] = 1
    result = gate(digest(cand), digest(synth(rng)))
    assert result.failures == ("violations",)
    assert result.exit_code == 3


def test_compare_is_fast_and_reproducible(synth):
    """One comparison of two 4,000-batch runs is the same table twice (a fixed seed)."""
    rng = np.random.default_rng(5)
    a, b = digest(synth(rng)), digest(synth(rng))
    first, second = compare(b, a), compare(b, a)
    assert first.drop(columns="verdict").equals(second.drop(columns="verdict"))
    assert (first["verdict"] == second["verdict"]).all()


def _slow_start(synth, seed: int):
    """400 batches whose slowest twentieth (200 ms) all fall at the run's start."""
    df = synth(np.random.default_rng(seed), n=400)
    first = np.argsort(df["started_at"].to_numpy())[: len(df) // 20]
    df.loc[df.index[first], "total_ms"] = 200.0
    return df


def test_clustered_slow_batches_widen_the_interval_but_never_below_zero(synth):
    """When slow batches cluster in time the p95 interval widens, yet never says a latency
    fell by more than 100 %."""
    row = compare(_slow_start(synth, 1), _slow_start(synth, 2)).loc["p95(total_ms)"]
    assert row["verdict"] == "same"
    assert -1.0 < row["ci_low"] < row["change"] < row["ci_high"]
