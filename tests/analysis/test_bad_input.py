"""Bad input: a clear RecordsError, or a best-effort load with a warning; never a KeyError."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadkit.analysis import load_run
from loadkit.errors import RecordsError
from loadkit.records import ARROW_SCHEMA, SCHEMA_VERSION


def test_missing_path(tmp_path):
    """A path that does not exist names itself and the expected form."""
    with pytest.raises(RecordsError, match=r"no such directory.*results/<run_id>"):
        load_run(tmp_path / "nope")


def test_a_file_that_is_not_a_run(tmp_path):
    """A stray file is not a run directory."""
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(RecordsError, match="is a file, not a run directory"):
        load_run(tmp_path / "notes.txt")


def test_a_folder_that_is_not_a_run(tmp_path):
    """An empty folder is not a run directory."""
    with pytest.raises(RecordsError, match="not a loadkit run directory"):
        load_run(tmp_path)


def test_the_results_folder_points_at_its_runs(make_run, records_a, meta_for, tmp_path):
    """Passing the parent results folder suggests one of its runs."""
    make_run("20250101-a", records_a, meta_for("a"))
    with pytest.raises(RecordsError, match=r"holds 1 run\(s\), e\.g\. .*20250101-a"):
        load_run(tmp_path)


def test_zero_batches(make_run, meta_for):
    """An empty records file loads with a warning; answers are zeros and NaN, not errors."""
    run_dir = make_run("empty", [], meta_for("empty"))
    with pytest.warns(UserWarning, match="no batch records"):
        run = load_run(run_dir)
    assert len(run.batches) == 0
    s = run.summary()
    assert s["batches"] == 0
    assert s["items"] == 0
    assert s["items_per_s"] != s["items_per_s"]  # NaN
    assert run.latency()["count"].sum() == 0
    assert run.throughput().empty
    assert run.latency_over_time().empty
    assert run.seal_outcomes()["batches"].sum() == 0
    assert run.seal_causes().empty
    assert run.dedupe().loc["all", "batches"] == 0
    assert run.backpressure()["batches"] == 0
    assert run.stall_by_size().empty
    assert run.stall_distribution()["batches"].sum() == 0
    assert run.rate_limiting()["responses_429"] == 0
    assert run.by_worker().empty
    assert len(run.compare(run)) > 10


def test_run_json_only(tmp_path, meta_for):
    """A run that started but recorded nothing yet loads empty with a warning."""
    (tmp_path / "run.json").write_text(json.dumps(meta_for("x")))
    with pytest.warns(UserWarning, match="no records yet"):
        run = load_run(tmp_path)
    assert run.source == "none"
    assert run.summary()["batches"] == 0


def test_torn_last_line(make_run, records_a, meta_for):
    """A run killed mid-write: the torn last line is skipped with a warning."""
    run_dir = make_run("killed", records_a, meta_for("run-a"))
    with open(run_dir / "records.jsonl", "ab") as f:
        f.write(b'{"run_id": "run-a", "worker_id": "w1", "us')
    with pytest.warns(UserWarning, match="torn last line"):
        run = load_run(run_dir)
    assert len(run.batches) == 8
    assert run.summary()["items"] == 639


def test_last_line_without_newline_is_kept(make_run, records_a, meta_for):
    """A complete last record whose newline was not written yet is a record, not a tear."""
    run_dir = make_run("nonl", records_a, meta_for("run-a"))
    path = run_dir / "records.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    run = load_run(run_dir)
    assert len(run.batches) == 8


def test_damaged_middle_line(make_run, records_a, meta_for):
    """A bad line that is not the last is damage: the error names the line."""
    run_dir = make_run("bad", records_a, meta_for("run-a"))
    path = run_dir / "records.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"{oops"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(RecordsError, match="line 3"):
        load_run(run_dir)


def test_wrong_types(make_run, records_a, meta_for):
    """A record whose field has the wrong type is reported, not a pandas traceback."""
    run_dir = make_run("types", records_a, meta_for("run-a"))
    path = run_dir / "records.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["seq"] = "first"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RecordsError, match="does not match the record schema"):
        load_run(run_dir)


def test_older_schema_version_jsonl(make_run, records_a, meta_for):
    """Records from an older schema (fields missing) load best-effort with warnings."""
    run_dir = make_run("old", records_a, meta_for("run-a", schema_version=0))
    path = run_dir / "records.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        del r["stall_ms"], r["verified"], r["ratelimit_reset_unit"], r["write_ms"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="schema version") as caught:
        run = load_run(run_dir)
    text = " ".join(str(w.message) for w in caught)
    assert f"schema version 0, older than this loadkit's {SCHEMA_VERSION}" in text
    assert "stall_ms" in text
    assert run.batches["stall_ms"].isna().all()
    assert run.summary()["items"] == 639
    assert run.backpressure()["stall_ms"] == 0
    assert math.isnan(run.backpressure()["write_share"])  # stall_ms not recorded either
    assert run.rate_limiting()["reset_unit_s"] == 0


def test_schema_2_stall_is_read_as_whole_writes(make_run, records_a, meta_for):
    """A schema-2 run's stall_ms (whole write times then) also fills write_ms, with a note."""
    run_dir = make_run("v2", records_a, meta_for("run-a", schema_version=2))
    path = run_dir / "records.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        del r["write_ms"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="schema version 2, older") as caught:
        run = load_run(run_dir)
    assert "whole write times" in " ".join(str(w.message) for w in caught)
    assert run.batches["write_ms"].tolist() == run.batches["stall_ms"].tolist()
    bp = run.backpressure()
    assert bp["write_share"] == bp["stalled_share"]


def test_older_schema_version_parquet(tmp_path, records_a):
    """An older Parquet file lacking a column loads with that column empty and a warning."""
    rows = [r.as_dict() for r in records_a]
    table = pa.Table.from_pylist(rows, schema=ARROW_SCHEMA).drop_columns(["max_stall_ms"])
    table = table.replace_schema_metadata({b"loadkit_schema_version": b"0"})
    pq.write_table(table, tmp_path / "records.parquet")
    with pytest.warns(UserWarning, match="run.json|schema version|lack") as caught:
        run = load_run(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "run.json" in text
    assert "schema version 0" in text
    assert "max_stall_ms" in text
    assert len(run.batches) == 8


def test_unreadable_run_json(make_run, records_a):
    """A broken run.json is reported and the records still load."""
    run_dir = make_run("meta", records_a, None)
    (run_dir / "run.json").write_text("{not json")
    with pytest.warns(UserWarning, match="without run metadata"):
        run = load_run(run_dir)
    assert run.meta == {}
    assert run.run_id == "run-a"


def test_damaged_parquet_falls_back_to_jsonl(make_run, records_a, meta_for):
    """A damaged Parquet file next to the JSONL: warn and load the JSONL."""
    run_dir = make_run("dmg", records_a, meta_for("run-a"))
    (run_dir / "records.parquet").write_bytes(b"PAR1 garbage")
    with pytest.warns(UserWarning, match=r"loaded records\.jsonl instead"):
        run = load_run(run_dir)
    assert run.source == "records.jsonl"
    assert len(run.batches) == 8


def test_damaged_parquet_alone(make_run, records_a, meta_for):
    """A damaged Parquet file with nothing to fall back to is a RecordsError."""
    run_dir = make_run("dmg", records_a, meta_for("run-a"), "parquet")
    (run_dir / "records.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(RecordsError, match="cannot read"):
        load_run(run_dir)
