"""Benchmark: loading and analysing a run vs a bare pyarrow read of the same Parquet file.

Generates N synthetic batch records (default 1,000,000) in the real schema
(:data:`loadkit.records.ARROW_SCHEMA`, vectorised with numpy; realistic shapes: lognormal
latencies and sizes, 8 workers × 32 users over 10 minutes, ~1 % retried, ~0.5 % failed,
a few faults and 429s), writes them as a run directory, then times in the same process:

- bare:    ``pyarrow.parquet.read_table(records.parquet)``
- loadkit: ``load_run(dir)`` + ``summary()`` + ``latency()`` + ``throughput("1s")``

Rounds (``bench/_rounds.py``): one discarded warm-up round of both (imports, page cache),
then ``--rounds`` rounds (``--repeat`` is the same option; default 40) of bare and loadkit,
alternating (ABBA). Each round's ratio is loadkit's time ÷ bare's in that round; the figure
is the median of those ratios (target ≤ 3×), its spread on the line under it. The times
shown, and loadkit's steps (timed inside each loadkit round), are medians over the rounds.
Cost at the default size (1,000,000 records), on a 2-core machine: ~1.1 s per round (scaled
from 0.33 s at 300,000 records), after ~5 s to generate and write the records: ~1 min in
all.

    .venv/bin/python bench/analysis.py [--records 1000000] [--rounds 40] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import _rounds
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loadkit.analysis import load_run
from loadkit.records import ARROW_SCHEMA, SCHEMA_VERSION


def synthetic(n: int, seed: int = 1) -> pa.Table:
    """``n`` plausible records of one run, as an Arrow table with the record schema."""
    rng = np.random.default_rng(seed)
    t0 = 1_750_000_000.0
    workers, users = 8, 256
    user = rng.integers(0, users, n)
    run_count = np.clip(rng.lognormal(np.log(500), 0.8, n), 1, 20_000).astype(np.int64)
    payload = (run_count * np.clip(rng.lognormal(np.log(512), 0.6, n), 16, 100_000)).astype(
        np.int64)
    create = rng.lognormal(np.log(8), 0.5, n)
    stream = rng.lognormal(np.log(40), 0.7, n) * run_count / 500
    total = create + stream + rng.exponential(2, n)
    started = t0 + np.sort(rng.uniform(0, 600, n))
    ended = started + total / 1000
    u = rng.random(n)
    outcome = np.where(u < 0.005, "failed",
                       np.where(u < 0.007, "not_sealed",
                                np.where(u < 0.008, "cached", "sealed")))
    sealed = outcome == "sealed"
    attempts = np.where(rng.random(n) < 0.01, 2, 1) + (outcome == "not_sealed") * 2
    attempts = np.where(outcome == "cached", 0, attempts)
    dup = rng.binomial(run_count, 0.001)
    gap = rng.binomial(run_count, 0.0005)
    lines = run_count + dup - gap
    stall_frac = np.clip(rng.beta(0.5, 6, n), 0, 1)
    limited = (rng.random(n) < 0.002).astype(np.int64)
    failed = outcome == "failed"
    ids = rng.integers(0, 2**63, n, dtype=np.int64)

    def nullable(values: np.ndarray, mask: np.ndarray, typ: pa.DataType) -> pa.Array:
        return pa.array(values, type=typ, mask=mask)

    never = np.zeros(n, dtype=bool)
    cols = {
        "run_id": pa.array(np.full(n, "bench-run"), pa.string()),
        "worker_id": pa.array(np.char.add("worker-", (user % workers).astype(str)), pa.string()),
        "user_id": user,
        "seq": np.arange(n) // users,
        "batch_id": pa.array(np.char.add("batch_", np.char.mod("%016x", ids)), pa.string()),
        "intended_at": nullable(started, ~never, pa.float64()),
        "started_at": started,
        "ended_at": ended,
        "create_ms": create,
        "stream_ms": nullable(stream, outcome == "cached", pa.float64()),
        "total_ms": total,
        "total_from_intended_ms": nullable(total, ~never, pa.float64()),
        "outcome": pa.array(outcome, pa.string()),
        "sealed": sealed,
        "sealed_attempt": nullable(attempts, ~sealed, pa.int64()),
        "attempts": attempts,
        "create_attempts": 1 + limited,
        "status": nullable(np.where(failed, 503, 200), never, pa.int64()),
        "error_kind": nullable(np.full(n, "connect"), ~failed, pa.string()),
        "error": nullable(np.full(n, "connection dropped by the target"), ~failed, pa.string()),
        "retry_reasons": pa.array(np.where(attempts > 1, "connect", ""), pa.string()),
        "run_count": run_count,
        "task_count": rng.integers(1, 4, n),
        "payload_bytes": payload,
        "lines_sent": lines,
        "bytes_sent": payload + lines * 60,
        "items_accepted": np.where(outcome == "cached", 0, run_count - gap),
        "items_deduplicated": dup,
        "enqueued_count": nullable(run_count - gap, gap == 0, pa.int64()),
        "expected_count": nullable(run_count, gap == 0, pa.int64()),
        "expected_status": np.full(n, 200),
        "expected_accepted": run_count - gap,
        "expected_deduplicated": dup,
        "expected_sealed": gap == 0,
        "fault_duplicate": dup,
        "fault_gap": gap,
        "fault_shuffle": (rng.random(n) < 0.01).astype(np.int64),
        "fault_malformed": np.zeros(n, dtype=np.int64),
        "fault_schema": np.zeros(n, dtype=np.int64),
        "fault_out_of_range": np.zeros(n, dtype=np.int64),
        "fault_oversized": (rng.random(n) < 0.001).astype(np.int64),
        "violations": np.zeros(n, dtype=np.int64),
        "violation_text": pa.nulls(n, pa.string()),
        "verified": nullable(np.ones(n, dtype=bool), rng.random(n) > 0.01, pa.bool_()),
        "stall_ms": np.nan_to_num(stream * stall_frac),
        "stall_fraction": stall_frac,
        "max_stall_ms": np.nan_to_num(stream * stall_frac / 3),
        "send_bytes_per_s": nullable((payload + lines * 60) / (stream / 1000),
                                     outcome == "cached", pa.float64()),
        "send_items_per_s": nullable(lines / (stream / 1000), outcome == "cached", pa.float64()),
        "response_tail_ms": nullable(rng.exponential(2, n), outcome == "cached", pa.float64()),
        "rate_limit_wait_ms": limited * rng.uniform(100, 1000, n),
        "rate_limited": limited,
        "ratelimit_reset_unit": nullable(np.full(n, "s"), limited == 0, pa.string()),
        "tasks": pa.array(np.char.add("loadkit-task:", run_count.astype(str)), pa.string()),
        "write_ms": np.nan_to_num(stream * np.maximum(stall_frac, 0.05)),
    }
    for f in ARROW_SCHEMA:  # columns added by later schema versions: empty, as when loaded
        if f.name not in cols and f.nullable:
            cols[f.name] = pa.nulls(n, f.type)
    arrays = [pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array)
              else cols[f.name] for f in ARROW_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    _rounds.add_arguments(parser, default=40, aliases=("--repeat",), per_round="~1.1 s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench-run"
        run_dir.mkdir()
        t = time.perf_counter()
        table = synthetic(args.records)
        gen_s = time.perf_counter() - t
        pq.write_table(table, run_dir / "records.parquet")
        (run_dir / "run.json").write_text(json.dumps(
            {"run_id": "bench-run", "schema_version": SCHEMA_VERSION}))
        size = (run_dir / "records.parquet").stat().st_size
        print(f"records: {args.records:,}  generated in {gen_s:.2f} s  "
              f"parquet {size / 1e6:.1f} MB")

        def bare() -> float:
            t0 = time.perf_counter()
            pq.read_table(run_dir / "records.parquet")
            return time.perf_counter() - t0

        answers = {}

        def loadkit_path() -> tuple[float, dict[str, float]]:
            """The whole path, and the seconds of each of its steps."""
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                run = load_run(run_dir)
            t1 = time.perf_counter()
            answers["summary"] = run.summary()
            t2 = time.perf_counter()
            answers["latency"] = run.latency()
            t3 = time.perf_counter()
            answers["throughput"] = run.throughput("1s")
            t4 = time.perf_counter()
            return t4 - t0, {"load_run": t1 - t0, "summary": t2 - t1, "latency": t3 - t2,
                             "throughput": t4 - t3}

        # interleaved, so both see the same machine
        got = _rounds.interleave({"bare": bare, "loadkit": loadkit_path}, args.rounds)
        bare_times = got["bare"]
        totals = [total for total, _ in got["loadkit"]]
        steps = {name: statistics.median(s[name] for _, s in got["loadkit"])
                 for name in got["loadkit"][0][1]}
        report = _rounds.Report("analysis")
        report.info.update(records=args.records, parquet_bytes=size)
        fig = report.add("ratio loadkit / bare", _rounds.ratios(totals, bare_times),
                         target=_rounds.at_most(3.0, "<= 3x"), unit="x")

        s = answers["summary"]
        print(f"check: batches {s['batches']:,}  items/s {s['items_per_s']:,.0f}  "
              f"p99 total {answers['latency'].loc['total', 'p99']:.1f} ms  "
              f"buckets {len(answers['throughput'])}")
        print(got.timing_line() + "; times: medians over the rounds")
        print(f"bare pyarrow read_table:                      "
              f"{statistics.median(bare_times) * 1000:8.1f} ms")
        for name, secs in steps.items():
            print(f"  {name:<12}                                {secs * 1000:8.1f} ms")
        print(f"loadkit load_run+summary+latency+throughput:  "
              f"{statistics.median(totals) * 1000:8.1f} ms")
        ratio = fig.median
        print(f"ratio loadkit / bare: {ratio:.2f}x  (target <= 3x: "
              f"{'met' if ratio <= 3 else 'NOT met'})")
        print(fig.spread_line())
        report.write(args.json)


if __name__ == "__main__":
    main()
