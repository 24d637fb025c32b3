"""Threshold expressions: parsing (clear errors, no eval) and evaluation over records."""

import errno
import math
import os
from types import SimpleNamespace

import pyarrow as pa
import pytest

from loadkit import runner
from loadkit.cli import main
from loadkit.errors import ThresholdError
from loadkit.records import (
    ARROW_SCHEMA,
    RECORDS_JSONL,
    BatchRecord,
    RecordWriter,
    create_run_dir,
)
from loadkit.thresholds import (
    DEFAULT_THRESHOLDS,
    evaluate,
    format_table,
    parse_threshold,
    parse_thresholds,
    threshold_texts,
)


def row(**over):
    """A sealed first-try batch of 10 items as a dict, with ``over`` applied."""
    return BatchRecord.blank(
        run_id="r", worker_id="local", started_at=100.0, ended_at=101.0, total_ms=100.0,
        outcome="sealed", sealed=True, attempts=1, create_attempts=1, run_count=10,
        task_count=1, payload_bytes=100, lines_sent=10, bytes_sent=1000, items_accepted=10,
        expected_status=200, expected_accepted=10, expected_sealed=True, stall_fraction=0.1,
    ).as_dict() | over


ROWS = [
    row(seq=i, total_ms=float(i + 1) * 10, started_at=100.0 + i, ended_at=101.0 + i)
    for i in range(10)
] + [
    row(seq=10, outcome="failed", sealed=False, error_kind="connect", items_accepted=0,
        total_ms=5000.0, violations=2),
    row(seq=11, outcome="dropped", sealed=False, total_ms=0.0, items_accepted=0, attempts=0),
]


@pytest.mark.parametrize(
    ("text", "metric", "field", "op", "limit"),
    [
        ("p95(total_ms) < 2000", "p95", "total_ms", "<", 2000),
        ("  seal_rate>=0.999 ", "seal_rate", None, ">=", 0.999),
        ("violations == 0", "violations", None, "==", 0),
        ("error_rate < 1%", "error_rate", None, "<", 0.01),
        ("p99.9(stall_fraction) <= .5", "p99.9", "stall_fraction", "<=", 0.5),
        ("items_per_s > 5_000", "items_per_s", None, ">", 5000),
        ("mean(create_ms) != 1e3", "mean", "create_ms", "!=", 1000),
        ("seal_rate >= 99.9%", "seal_rate", None, ">=", 0.999),
    ],
)
def test_parse_accepts_the_documented_forms(text, metric, field, op, limit):
    t = parse_threshold(text)
    assert (t.metric, t.field, t.op) == (metric, field, op)
    assert t.limit == pytest.approx(limit, rel=0, abs=0)
    assert parse_threshold(str(t)) == t  # the normalised text parses back to the same


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("p95(total_ms) <", "does not parse"),
        ("seal_rate => 1", "does not parse"),
        ("__import__('os') < 1", "does not parse"),
        ("latency < 5", "unknown metric 'latency'"),
        ("p95(latency) < 5", "'latency' is not a numeric record field"),
        ("p95(error) < 5", "'error' is not a numeric record field"),
        ("avg(total_ms) < 5", "unknown aggregate 'avg'"),
        ("p101(total_ms) < 5", "unknown aggregate"),
    ],
)
def test_parse_errors_name_the_expression_and_the_accepted_form(text, says):
    with pytest.raises(ThresholdError) as info:
        parse_threshold(text)
    assert says in str(info.value)
    assert repr(text) in str(info.value)


def test_defaults_parse():
    assert len(parse_thresholds(DEFAULT_THRESHOLDS)) == len(DEFAULT_THRESHOLDS)


def test_evaluate_named_metrics_and_aggregates():
    results = evaluate(
        [
            "batches == 11", "dropped == 1", "sealed == 10", "seal_rate >= 0.9",
            "error_rate < 0.05", "violations == 0", "items == 100", "duration_s == 10",
            "items_per_s == 10", "max(total_ms) < 1000", "p50(total_ms) < 100",
            "drop_rate > 0.08",
        ],
        ROWS,
    )
    measured = {str(r.threshold): r.value for r in results}
    assert measured["batches == 11"] == 11
    assert measured["seal_rate >= 0.9"] == pytest.approx(10 / 11)
    assert measured["error_rate < 0.05"] == pytest.approx(1 / 11)
    assert measured["violations == 0"] == 2
    assert measured["duration_s == 10"] == pytest.approx(10.0)
    assert measured["max(total_ms) < 1000"] == 5000  # dropped record (0 ms) skipped
    assert measured["p50(total_ms) < 100"] == pytest.approx(60.0)
    passed = {str(r.threshold): r.passed for r in results}
    assert passed == {
        "batches == 11": True, "dropped == 1": True, "sealed == 10": True,
        "seal_rate >= 0.9": True, "error_rate < 0.05": False, "violations == 0": False,
        "items == 100": True, "duration_s == 10": True, "items_per_s == 10": True,
        "max(total_ms) < 1000": False, "p50(total_ms) < 100": True, "drop_rate > 0.08": True,
    }


def test_evaluate_accepts_tables_and_dataframes_alike():
    table = pa.Table.from_pylist(ROWS, schema=ARROW_SCHEMA)
    texts = ["p95(total_ms) < 2000", "seal_rate >= 0.9", "mean(stall_fraction) < 0.5"]
    as_rows = [r.value for r in evaluate(texts, ROWS)]
    assert [r.value for r in evaluate(texts, table)] == as_rows
    assert [r.value for r in evaluate(texts, table.to_pandas())] == as_rows


def test_no_data_never_passes():
    results = evaluate(["seal_rate >= 0", "p95(create_ms) < 1e9", "batches == 0"], [])
    assert [r.passed for r in results] == [False, False, True]
    assert math.isnan(results[0].value)
    table = format_table(results)
    assert "no data" in table
    assert "1 passed, 2 failed (exit code 3)" in table


def test_table_lists_threshold_value_and_result():
    table = format_table(evaluate(["seal_rate >= 0.9", "violations == 0"], ROWS))
    lines = table.splitlines()
    assert lines[0].split() == ["threshold", "measured", "result"]
    assert "seal_rate >= 0.9" in lines[2]
    assert lines[2].endswith("pass")
    assert "violations == 0" in lines[3]
    assert "2" in lines[3]
    assert lines[3].endswith("FAIL")


def test_threshold_texts_split_every_way_a_flag_or_config_gives_them():
    """One splitter: None, a string, a list, ';' and newlines, Threshold objects, blanks."""
    assert threshold_texts(None) == []
    assert threshold_texts("batches > 0; seal_rate >= 1\nviolations == 0;") == [
        "batches > 0", "seal_rate >= 1", "violations == 0"]
    assert threshold_texts(["batches > 0", " ; ", parse_threshold("p95(total_ms) < 5")]) == [
        "batches > 0", "p95(total_ms) < 5"]


def _run_dir(tmp_path):
    """A run directory holding ROWS as records.jsonl."""
    run_dir = create_run_dir(tmp_path, "run")
    with RecordWriter(run_dir / RECORDS_JSONL) as writer:
        writer.write_many(ROWS)
    return run_dir


def test_check_splits_semicolons_and_a_missing_run_dir_is_a_usage_error(tmp_path, capsys):
    """`loadkit check` reads 'a; b' as two thresholds; a missing RUN_DIR exits 2 in one line."""
    run_dir = _run_dir(tmp_path)
    assert main(["check", str(run_dir), "--threshold", "batches == 11; dropped == 1"]) == 0
    assert "thresholds: 2 passed, 0 failed" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nope"), "--threshold", "batches > 0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("loadkit check: error: no run directory at ")


def test_smoke_on_a_full_disk_exits_2_without_a_traceback(tmp_path, capsys, monkeypatch):
    """A thresholds.txt that cannot be written is one error line and exit 2, old file kept."""
    run_dir = _run_dir(tmp_path)
    (run_dir / "thresholds.txt").write_text("before\n")
    monkeypatch.setattr(runner, "run", lambda **kw: SimpleNamespace(
        exit_code=0, path=run_dir, log=run_dir / "locust.log"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert main(["smoke", "--threshold", "batches > 0"]) == 2
    out, err = capsys.readouterr()
    assert "thresholds: 1 passed, 0 failed" in out
    assert err == (f"loadkit smoke: error: cannot write {run_dir / 'thresholds.txt'}: "
                   "No space left on device\n")
    assert (run_dir / "thresholds.txt").read_text() == "before\n"
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]
