"""Per-chunk timings in the run directory (chunks.jsonl), locally and across workers."""

from __future__ import annotations

import pytest

from loadkit.analysis import load_run
from loadkit.records import CHUNKS_JSONL
from tests.locust.conftest import processes as on_free_port

pytestmark = pytest.mark.slow

SLOW = ("--items", "1000", "--payload-bytes", "2000", "--send-buffer-bytes", "65536",
        "--server-enqueue-delay", "0.01", "--server-ingest-concurrency", "8",
        "--keep-chunk-timings", "true")


@pytest.mark.parametrize("processes", [None, "2"])
def test_chunk_timeline_shows_stalls_of_a_slow_server(run_locust, processes):
    """With --keep-chunk-timings every chunk gets a row; a slow server shows as long stalls."""
    extra = on_free_port(int(processes)) if processes else ()
    run = run_locust("--headless", "-u", "2", "-r", "2", "-t", "3s", *SLOW, *extra)
    assert run.returncode == 0, run.output[-3000:]
    assert (run.run_dir / CHUNKS_JSONL).exists()
    result = load_run(run.run_dir)
    timeline = result.chunk_timeline()
    batches = result.batches
    assert set(timeline["batch_id"]) == set(batches["batch_id"])
    assert set(timeline["worker_id"]) == set(batches["worker_id"])
    assert len(set(batches["worker_id"])) == (2 if processes else 1)
    assert (timeline["run_id"] == result.run_id).all()
    by_batch = timeline.groupby("batch_id")
    per = batches.set_index("batch_id")
    assert (by_batch.size() == by_batch["chunk"].max() + 1).all()
    assert by_batch["stall_ms"].sum().to_numpy() == pytest.approx(
        per.loc[by_batch.size().index, "stall_ms"].to_numpy())
    assert by_batch["write_ms"].sum().to_numpy() == pytest.approx(
        per.loc[by_batch.size().index, "write_ms"].to_numpy())
    assert by_batch["bytes"].sum().to_numpy().tolist() == per.loc[
        by_batch.size().index, "bytes_sent"].tolist()
    # 2 MB batches through a 64 KiB send buffer to a server enqueueing ~800 items/s per
    # stream (~1.6 MB/s): once the buffers between writer and enqueue are full, the writer
    # waits (measured 16-70 % of a stream here: the server's buffers take 0.4-1 MB of the
    # 2 MB); a server that keeps up makes it wait not at all (tests/truth: < 1 %).
    share = by_batch["stall_ms"].sum() / per.loc[by_batch.size().index, "stream_ms"]
    assert share.median() > 0.1
    assert timeline["stall_ms"].max() > 5
    assert timeline["elapsed_s"].is_monotonic_increasing
