"""Run.assert_thresholds: the thresholds table as an AssertionError (no load: records
written by hand, four sealed batches with known latencies)."""

from __future__ import annotations

import json

import pytest

from loadkit.analysis import Run, load_run
from loadkit.errors import ThresholdError
from loadkit.records import BatchRecord
from loadkit.thresholds import check_thresholds

T0 = 1_700_000_000.0
TOTALS = (100.0, 200.0, 300.0, 400.0)


@pytest.fixture
def run(tmp_path) -> Run:
    rows = [BatchRecord.blank(run_id="r", worker_id="local", seq=i, batch_id=f"batch_{i}",
                              started_at=T0 + i, ended_at=T0 + i + total / 1000,
                              outcome="sealed", sealed=True, sealed_attempt=1, attempts=1,
                              status=200, run_count=10, items_accepted=10, total_ms=total,
                              create_ms=total / 10).as_dict()
            for i, total in enumerate(TOTALS)]
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                            encoding="utf-8")
    return load_run(tmp_path)


def test_all_pass_returns_the_check(run):
    """Every threshold holds: no exception; the check says so (one string may hold two)."""
    check = run.assert_thresholds("max(total_ms) <= 400", "seal_rate >= 0.999; batches == 4")
    assert check.passed
    assert [str(r.threshold) for r in check.results] == [
        "max(total_ms) <= 400", "seal_rate >= 0.999", "batches == 4"]


def test_a_failure_raises_the_table(run):
    """Any threshold failing: AssertionError whose message is check_thresholds' table."""
    exprs = ("p95(total_ms) < 300", "seal_rate >= 0.999")
    with pytest.raises(AssertionError) as raised:
        run.assert_thresholds(*exprs)
    table = check_thresholds(exprs, run.batches).table
    assert str(raised.value) == table
    assert table.splitlines()[2:] == [
        "p95(total_ms) < 300  385       FAIL",
        "seal_rate >= 0.999   1         pass",
        "thresholds: 1 passed, 1 failed (exit code 3)",
    ]


@pytest.mark.parametrize(("exprs", "says"), [
    (("p95(total_ms) <",), "does not parse"),
    (("seal_rate >= 0.999", "p95(no_such_field) < 1"), "not a numeric record field"),
    ((), "at least one expression"),
])
def test_bad_expressions_are_threshold_errors(run, exprs, says):
    """A malformed expression (or none) is the ThresholdError every entry point raises (a
    ValueError), never an AssertionError that would pass for a failed threshold."""
    with pytest.raises(ThresholdError, match=says):
        run.assert_thresholds(*exprs)
