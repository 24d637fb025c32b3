"""loadkit export and Run.to_csv: a run's rows as CSV, Parquet and JSON lines."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadkit import records as rec
from loadkit.export import export_run, schema_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "records.md"


def _run_dir(tmp_path: Path, n: int = 5, *, torn: bool = False, chunks: bool = False) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rows = [rec.BatchRecord.blank(run_id="r", worker_id="local", user_id=0, seq=k,
                                  outcome="sealed", sealed=True, run_count=100,
                                  items_accepted=100, started_at=1.7e9 + k,
                                  ended_at=1.7e9 + k + 0.25, total_ms=250.0,
                                  stall_fraction=1e-7).as_dict() for k in range(n)]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    if torn:
        body += '{"run_id": "r", "seq": '
    (run_dir / rec.RECORDS_JSONL).write_text(body)
    if chunks:
        (run_dir / rec.CHUNKS_JSONL).write_text(
            json.dumps({c: 1 for c in rec.CHUNK_FIELDS}) + "\n")
    return run_dir


def test_csv_has_every_column_in_schema_order_and_no_scientific_notation(tmp_path):
    """CSV: a header of the schema's columns, one row per batch, plain numbers, true/false."""
    done = export_run(_run_dir(tmp_path), "csv")
    with open(done.paths[0], newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(rec.FIELD_NAMES)
    assert len(table) == 6
    row = dict(zip(table[0], table[1], strict=True))
    assert row["sealed"] == "true"
    assert row["batch_id"] == ""
    assert row["stall_fraction"] == "0.0000001"
    assert row["started_at"] == "1700000000.0"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl_hold_the_same_rows(tmp_path, fmt):
    """Parquet and JSON lines exports read back as the records."""
    done = export_run(_run_dir(tmp_path), fmt, tmp_path / "out")
    path = done.paths[0]
    assert path == tmp_path / "out" / f"records.{fmt}"
    rows = (pq.read_table(path).to_pylist() if fmt == "parquet"
            else [json.loads(line) for line in path.read_text().splitlines()])
    assert [r["seq"] for r in rows] == list(range(5))


def test_a_torn_last_line_is_skipped_and_said(tmp_path):
    """A records file cut mid-line exports every line before the cut and says one was skipped."""
    done = export_run(_run_dir(tmp_path, torn=True), "csv")
    assert done.rows == 5
    assert any("skipped 1 torn last line" in note for note in done.notes)


def test_chunk_rows_go_beside_the_records(tmp_path):
    """--chunks writes the chunk rows next to the records file."""
    done = export_run(_run_dir(tmp_path, chunks=True), "csv", chunks=True)
    assert [p.name for p in done.paths] == ["records.csv", "records.chunks.csv"]
    assert done.chunk_rows == 1


def test_cli_exports_and_refuses_bad_input(tmp_path):
    """loadkit export writes the file (exit 0); no records or an unknown format: exit 2."""
    run_dir = _run_dir(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "loadkit", "export", str(run_dir)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "5 records written" in ok.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in ([str(empty)], [str(run_dir), "--format", "xlsx"]):
        bad = subprocess.run([sys.executable, "-m", "loadkit", "export", *argv],
                             capture_output=True, text=True, check=False)
        assert bad.returncode == 2
        assert len(bad.stderr.strip().splitlines()) == 1


def test_records_doc_is_generated_from_the_schema():
    """docs/records.md is exactly what the schema generates, and documents every column."""
    assert DOCS.read_text(encoding="utf-8") == schema_markdown() + "\n"
    for name in rec.FIELD_NAMES:
        line = next(line for line in DOCS.read_text().splitlines() if f"| `{name}` |" in line)
        assert not line.endswith("|  |"), f"{name} is not documented"
