"""Steady-state windows and per-chunk timelines, on hand-written run directories."""

from __future__ import annotations

import json

import pytest

from loadkit.analysis import chunk_timeline, window
from loadkit.generators import BatchSpec
from loadkit.records import CHUNK_FIELDS, CHUNKS_JSONL
from loadkit.result import Attempt, BatchResult, ChunkTimings

from .conftest import T0


def test_window_keeps_batches_started_inside_and_drops_server_counters(run_a):
    """window(start, end) keeps the batches that started in [start, end) after the first."""
    late = run_a.window(1.0)
    assert sorted(late.batches["started_at"] - T0) == pytest.approx([1.5, 2.3, 2.4, 3.0])
    assert late.summary()["batches"] == 3  # the dropped one is not a batch
    assert late.summary()["duration_s"] == pytest.approx(3.2 - 1.5)
    middle = window(run_a, 0.5, 2.0)
    assert sorted(middle.batches["started_at"] - T0) == pytest.approx([0.5, 0.8, 1.5])
    assert middle.latency().loc["create", "p50"] == pytest.approx(40.0)
    assert run_a.crosscheck() is not None
    assert middle.crosscheck() is None
    assert middle.meta["window"] == {"start_s": 0.5, "end_s": 2.0}
    assert len(run_a.window().batches) == len(run_a.batches)
    for bad in ((-1, None), (None, float("nan")), (2.0, 1.0), ("1", None)):
        with pytest.raises(ValueError, match=r"start|end"):
            run_a.window(*bad)


def test_chunk_timeline_reads_chunks_jsonl_in_time_order(run_a):
    """chunks.jsonl rows come back sorted by time with UTC times and seconds since start."""
    rows = [
        {"run_id": "run-a", "worker_id": "w1", "user_id": 0, "seq": 0, "batch_id": "b0",
         "attempt": 1, "chunk": k, "at": T0 + 0.1 * (2 - k), "offset_ms": 100.0 * (2 - k),
         "offset_bytes": 0, "bytes": 65536, "write_ms": 5.0 * k}
        for k in range(3)
    ]
    with open(run_a.path / CHUNKS_JSONL, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
        fh.write('{"run_id": "run-a", "wor')  # torn by a kill mid-write
    timeline = chunk_timeline(run_a)
    assert list(timeline["chunk"]) == [2, 1, 0]
    assert list(timeline["elapsed_s"]) == pytest.approx([0.0, 0.1, 0.2])
    assert list(timeline["write_ms"]) == [10.0, 5.0, 0.0]
    assert timeline["time"].iloc[0].timestamp() == pytest.approx(T0)
    assert set(CHUNK_FIELDS) <= set(timeline.columns)


def test_chunk_rows_one_per_chunk_with_offsets():
    """BatchResult.chunk_rows flattens every attempt's kept timings, offsets included."""
    batch = BatchSpec.parse(items="3").batch(7)
    result = BatchResult(seq=7, run_count=3, task_count=1, payload_bytes=1, started_at=T0,
                         expected=batch.expected, resend="full", batch_id="batch_x")
    for number, sizes in ((1, (100, 50)), (2, (30,))):
        timings = ChunkTimings()
        for k, size in enumerate(sizes):
            timings.at_ms.append(10.0 * k)
            timings.write_ms.append(1.5 * k)
            timings.stall_ms.append(1.0 * k)
            timings.size.append(size)
        result.attempts.append(Attempt(number=number, sent="first", started_at=T0 + number,
                                       timings=timings))
    result.attempts.append(Attempt(number=3, sent="full", started_at=T0 + 3))  # no timings
    rows = result.chunk_rows(run_id="r", worker_id="local", user_id=2)
    assert [(r["attempt"], r["chunk"], r["offset_bytes"], r["bytes"]) for r in rows] == [
        (1, 0, 0, 100), (1, 1, 100, 50), (2, 0, 0, 30)]
    assert rows[1]["at"] == pytest.approx(T0 + 1 + 0.01)
    assert rows[1]["write_ms"] == 1.5
    assert rows[1]["stall_ms"] == 1.0
    assert all(tuple(r) == CHUNK_FIELDS for r in rows)
