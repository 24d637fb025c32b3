"""A small fixed record set written as run directories, for the analysis, plot and report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadkit.records import ARROW_SCHEMA, SCHEMA_VERSION, BatchRecord

matplotlib.use("Agg")

T0 = 1_700_000_000.0
FAKE_KEY = "tr_dev_LEAKCANARY_0123_4567_89ab"  # shaped unlike a real key on purpose
"""A distinctive key planted in run.json; no report may contain it."""

_DEFAULTS: dict[str, Any] = dict(
    run_id="run-a", worker_id="w1", started_at=T0, ended_at=T0, outcome="sealed",
    sealed=True, sealed_attempt=1, attempts=1, create_attempts=1, status=200, run_count=100,
    task_count=1, payload_bytes=9000, lines_sent=100, bytes_sent=10_000, items_accepted=100,
    expected_status=200, expected_accepted=100, expected_sealed=True,
)
"""A sealed first-try batch of 100 items: what differs from :meth:`BatchRecord.blank`."""


def rec(seq: int, start: float, end: float, **fields: Any) -> BatchRecord:
    """One record with the defaults above, times given relative to T0."""
    values = dict(_DEFAULTS, seq=seq, started_at=T0 + start, ended_at=T0 + end,
                  batch_id=f"batch_{fields.get('worker_id', 'w1')}_{seq}")
    if fields.get("intended") is not None:
        values["intended_at"] = T0 + fields.pop("intended")
    values.update(fields)
    return BatchRecord.blank(**values)


def _records_a() -> list[BatchRecord]:
    """Run A (closed model): eight batches covering every outcome; see tests for the sums."""
    return [
        rec(0, 0.0, 0.5, create_ms=10.0, stream_ms=400.0, total_ms=500.0, stall_ms=100.0,
            stall_fraction=0.25, max_stall_ms=50.0, send_items_per_s=250.0),
        rec(1, 0.5, 1.5, create_ms=20.0, stream_ms=900.0, total_ms=1000.0, sealed_attempt=2,
            attempts=2, retry_reasons="not_sealed", fault_gap=2, expected_accepted=98,
            expected_sealed=False, lines_sent=102, bytes_sent=10_200, task_count=2,
            stall_ms=450.0, stall_fraction=0.5, max_stall_ms=200.0, send_items_per_s=110.0,
            payload_bytes=20_000),
        rec(0, 0.2, 0.8, worker_id="w2", user_id=1, create_ms=30.0, stream_ms=500.0,
            total_ms=600.0, run_count=200, items_accepted=200, items_deduplicated=3,
            expected_accepted=200, expected_deduplicated=3, fault_duplicate=3,
            lines_sent=203, bytes_sent=20_300, payload_bytes=18_000, send_items_per_s=400.0),
        rec(1, 0.8, 2.3, worker_id="w2", user_id=1, create_ms=40.0, stream_ms=1200.0,
            total_ms=1500.0, outcome="failed", sealed=False, sealed_attempt=None, attempts=3,
            status=None, error_kind="connect", error="connection dropped",
            retry_reasons="connect,connect", items_accepted=50, lines_sent=50,
            bytes_sent=5_000, stall_ms=600.0, stall_fraction=0.5, max_stall_ms=300.0,
            send_items_per_s=40.0),
        rec(2, 2.3, 2.4, worker_id="w2", user_id=1, create_ms=50.0, total_ms=100.0,
            outcome="cached", sealed=False, sealed_attempt=None, attempts=0, status=200,
            items_accepted=0, lines_sent=0, bytes_sent=0),
        rec(2, 1.5, 3.0, create_ms=60.0, stream_ms=1400.0, total_ms=1500.0,
            outcome="not_sealed", sealed=False, sealed_attempt=None, attempts=3,
            retry_reasons="not_sealed,not_sealed", items_accepted=90, lines_sent=90,
            bytes_sent=9_000, rate_limited=2, rate_limit_wait_ms=800.0,
            ratelimit_reset_unit="s", violations=1, violation_text="sealed: expected true",
            stall_ms=1050.0, stall_fraction=0.75, max_stall_ms=400.0, send_items_per_s=60.0,
            enqueued_count=90, expected_count=100),
        rec(3, 3.0, 3.0, outcome="dropped", sealed=False, sealed_attempt=None, attempts=0,
            create_attempts=0, status=None, batch_id=None, items_accepted=0, lines_sent=0,
            bytes_sent=0),
        rec(3, 2.4, 3.2, worker_id="w2", user_id=1, create_ms=70.0, stream_ms=700.0,
            total_ms=800.0, rate_limited=1, rate_limit_wait_ms=300.0,
            ratelimit_reset_unit="ms", fault_oversized=1, items_accepted=99, verified=False,
            stall_ms=70.0, stall_fraction=0.1, max_stall_ms=70.0, send_items_per_s=140.0),
    ]


def _records_b() -> list[BatchRecord]:
    """Run B (open model): four sealed batches, each started later than intended."""
    out = []
    for i, (intended, start, total) in enumerate(
            [(0.0, 0.0, 200.0), (0.25, 0.4, 300.0), (0.5, 0.9, 400.0), (0.75, 1.0, 500.0)]):
        out.append(rec(i, start, start + total / 1000, run_id="run-b", intended=intended,
                       create_ms=total / 10, stream_ms=total * 0.8, total_ms=total,
                       total_from_intended_ms=total + (start - intended) * 1000,
                       stall_ms=total * 0.8 * 0.2, stall_fraction=0.2))
    return out


SERVER_STATS = {
    "create_requests": 7, "batches_created": 6, "batches_cached": 1, "batches_sealed": 4,
    "stream_requests": 13, "lines_read": 545, "bytes_read": 54_500, "items_enqueued": 639,
    "items_deduplicated": 3, "rate_limited": 3,
}


def _meta_for(run_id: str, **extra: Any) -> dict[str, Any]:
    """A run.json as the locust runs write it, with a planted key the report must hide."""
    return {
        "run_id": run_id, "schema_version": SCHEMA_VERSION, "started_at": T0,
        "ended_at": T0 + 3.2, "loadkit_version": "0.1.0",
        "target": {"url": "http://127.0.0.1:9/", "embedded": True},
        "options": {"users": 2, "batch_size": "uniform:100:200", "secret_key": FAKE_KEY,
                    "headers": f"Authorization: Bearer {FAKE_KEY}",
                    "threshold": ["p95(total_ms) < 2000", "seal_rate >= 0.5"]},
        **extra,
    }


def _write_run(path: Path, records: list[BatchRecord], meta: dict[str, Any] | None,
              fmt: str) -> Path:
    """Write ``records`` as a run directory: run.json plus records.jsonl or records.parquet."""
    path.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        (path / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    rows = [r.as_dict() for r in records]
    if fmt == "jsonl":
        with open(path / "records.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA),
                       path / "records.parquet")
    return path


@pytest.fixture(params=["jsonl", "parquet"])
def run_a_dir(request, tmp_path) -> Path:
    """Run A written in each record format, with server truth counters in run.json."""
    return _write_run(tmp_path / "run-a", _records_a(),
                      _meta_for("run-a", server_stats=SERVER_STATS), request.param)


@pytest.fixture
def run_a(run_a_dir):
    """Run A loaded."""
    from loadkit.analysis import load_run  # noqa: PLC0415

    return load_run(run_a_dir)


@pytest.fixture
def run_b(tmp_path):
    """Run B (open model) loaded from Parquet."""
    from loadkit.analysis import load_run  # noqa: PLC0415

    return load_run(_write_run(tmp_path / "run-b", _records_b(), _meta_for("run-b"), "parquet"))


@pytest.fixture
def records_a() -> list[BatchRecord]:
    """Run A's records (fresh list)."""
    return _records_a()


@pytest.fixture
def meta_for():
    """The run.json builder."""
    return _meta_for


@pytest.fixture
def fake_key() -> str:
    """The planted key."""
    return FAKE_KEY


@pytest.fixture
def make_run(tmp_path):
    """Write records as a run directory under tmp_path: ``make_run(name, records, meta, fmt)``."""
    def make(name: str, records: list[BatchRecord], meta: dict[str, Any] | None = None,
             fmt: str = "jsonl") -> Path:
        return _write_run(tmp_path / name, records, meta, fmt)

    return make
