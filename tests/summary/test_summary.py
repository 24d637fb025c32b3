"""The loadkit summary block: its figures, its length, its modes, the repr of a Run."""

from __future__ import annotations

import re

import pytest

from loadkit.analysis import backpressure, latency, load_run
from loadkit.summary import MAX_LINES, ThresholdLine, figures, summary_text
from loadkit.thresholds import evaluate
from tests.analysis.conftest import _meta_for, _records_a, _records_b, _write_run


@pytest.fixture
def run_a(tmp_path):
    """Run A (every outcome) loaded from Parquet."""
    meta = _meta_for("run-a", model="closed", locust={"num_users": 2})
    return load_run(_write_run(tmp_path / "a", _records_a(), meta, "parquet"))


@pytest.fixture
def run_b(tmp_path):
    """Run B (open model) loaded from JSONL."""
    return load_run(_write_run(tmp_path / "b", _records_b(), _meta_for("run-b", model="open"),
                               "jsonl"))


def test_repr_is_the_summary_block(run_a):
    """repr(Run) is the full block: header, seals, rates, latency, thresholds ✓ with values."""
    text = repr(run_a)
    assert text == run_a.summary_text("full")
    lines = text.splitlines()
    assert lines[0].startswith("loadkit summary  run run-a")
    assert "closed model, 2 users" in lines[0]
    assert "sealed 71.4 %" in text
    assert "after retry 1" in text
    assert "200 items/s" in text
    assert "retries      5 (not_sealed 3, connect 2)" in text
    assert "429s 3 (waited 1.1 s)" in text
    assert "✓ p95(total_ms) < 2000  1,500 ms" in text
    assert "thresholds: 2 passed, 0 failed" in text


def test_figures_agree_with_the_analysis_functions(run_a, run_b):
    """Percentiles and stall share are those of analysis.latency and analysis.backpressure."""
    for run in (run_a, run_b):
        f = figures(run.batches)
        lat = latency(run)
        for label, row in (("total", "total"), ("create", "create")):
            assert f.latency[label]["p95"] == pytest.approx(lat.loc[row, "p95"])
        assert f.stall_share == pytest.approx(backpressure(run)["stalled_share"])
    assert "from intended" in figures(run_b.batches).latency
    assert "from intended" not in figures(run_a.batches).latency


def test_numbers_are_for_people(run_a):
    """No scientific notation and no long float tails anywhere in the block."""
    text = summary_text(run_a.batches, run_a.meta, mode="full")
    assert not re.search(r"\de[+-]?\d", text)
    assert not re.search(r"\d\.\d{5,}", text)


def test_many_thresholds_stay_under_25_lines(run_a):
    """Forty thresholds fold into the limit, failed ones first."""
    texts = [f"p{p}(total_ms) < {10_000 - p}" for p in range(50, 90)] + ["batches > 100"]
    lines = [ThresholdLine(str(r.threshold), r.value, r.passed)
             for r in evaluate(texts, run_a.batches)]
    text = summary_text(run_a.batches, run_a.meta, thresholds=lines)
    rows = text.splitlines()
    assert len(rows) <= MAX_LINES < 25
    assert "thresholds: 40 passed, 1 failed (exit code 3)" in text
    first = rows.index("  thresholds: 40 passed, 1 failed (exit code 3)") + 1
    assert rows[first].lstrip().startswith("✗ batches > 100")
    assert re.search(r"… \d+ more \(\d+ passed\)", rows[-1])


def test_modes(run_a):
    """short is a few lines with failed thresholds only; none is empty; others refused."""
    lines = [ThresholdLine("batches > 100", 7.0, False), ThresholdLine("batches > 0", 7, True)]
    short = summary_text(run_a.batches, run_a.meta, thresholds=lines, mode="short")
    assert len(short.splitlines()) == 5
    assert "✗ batches > 100" in short
    assert "✓" not in short
    assert summary_text(run_a.batches, run_a.meta, mode="none") == ""
    with pytest.raises(ValueError, match="none, short, full"):
        summary_text(run_a.batches, run_a.meta, mode="long")


def test_empty_run(tmp_path):
    """A run with no batches says so in one line under its header."""
    with pytest.warns(UserWarning, match="no batch records"):
        run = load_run(_write_run(tmp_path / "e", [], _meta_for("run-e"), "parquet"))
    text = run.summary_text()
    assert "no batches were recorded" in text
    assert "thresholds: 0 passed, 2 failed" in text
