"""Capacity searches against reference servers whose limits are known: the knee and its cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import loadkit
from loadkit.capacity_search import CAPACITY_JSON, Capacity
from loadkit.records import read_records
from loadkit.report import write_report

pytestmark = pytest.mark.slow

SMALL = ("--items", "100", "--payload-bytes", "256", "--step-seconds", "3")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _capacity_cli(tmp_path: Path, *args: str, timeout: float = 200) -> tuple[dict, str, float]:
    """Run ``loadkit capacity … --json``; its JSON answer, stdout and wall time."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "loadkit", "capacity", "--results-dir", str(tmp_path),
         "--json", *args], env=_env(), capture_output=True, text=True, timeout=timeout,
        check=False)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer, proc.stdout, elapsed


def test_ingest_cap_of_20000_is_the_knee_and_found_within_120_s(tmp_path):
    """--server-ingest-rate 20000: knee within ±10 % of it, target_ingest, under 120 s."""
    answer, out, elapsed = _capacity_cli(
        tmp_path, "--start", "2000", "--server-ingest-rate", "20000", *SMALL)
    assert answer["limited_by"] == "target_ingest", out
    assert 18_000 <= answer["knee_items_per_s"] <= 22_000, out
    assert elapsed < 120, f"the search took {elapsed:.0f} s"
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(lines) == len(answer["steps"]) >= 5
    assert "capacity " in out
    assert "items/s" in out
    assert "limited by target_ingest" in out
    run_dir = Path(answer["run_dir"])
    assert json.loads((run_dir / CAPACITY_JSON).read_text()) == answer
    table = read_records(run_dir)  # every step's batches, in one run directory
    windows = [(s["window_start"], s["window_start"] + s["window_s"]) for s in answer["steps"]]
    intended = [t for t in table.column("intended_at").to_pylist() if t is not None]
    in_steps = sum(any(a <= t < b for a, b in windows) for t in intended)
    assert in_steps == len(intended) == sum(s["batches"] for s in answer["steps"])
    for key in ("knee_items_per_s", "limited_by", "steps", "run_dir", "bounds"):
        assert key in answer
    page = write_report(run_dir).read_text(encoding="utf-8")  # the picture in the report
    assert 'id="capacity-answer"' in page
    assert "limited by target_ingest" in page
    assert (run_dir / "report" / "capacity.png").stat().st_size > 10_000


def test_ingest_cap_of_60000_is_the_knee(tmp_path):
    """--server-ingest-rate 60000 with 1,000-item batches: knee within ±10 %, target_ingest."""
    answer, out, _ = _capacity_cli(
        tmp_path, "--start", "8000", "--server-ingest-rate", "60000", "--items", "1000",
        "--payload-bytes", "256", "--step-seconds", "3")
    assert answer["limited_by"] == "target_ingest", out
    assert 54_000 <= answer["knee_items_per_s"] <= 66_000, out


def test_rate_limit_refilling_50_runs_per_s_is_the_knee(tmp_path):
    """A bucket refilling 50 runs/s (at most 10): knee within ±15 % of 50 items/s, rate_limit."""
    answer, out, _ = _capacity_cli(
        tmp_path, "--start", "10", "--items", "5", "--payload-bytes", "64",
        "--step-seconds", "3", "--server-rate-limit", "10:5/100ms")
    assert answer["limited_by"] == "rate_limit", out
    assert 42.5 <= answer["knee_items_per_s"] <= 57.5, out


def test_a_generator_that_cannot_keep_up_is_reported_as_client(tmp_path):
    """Two users against a target answering each batch in 50 ms: limited by client, a lower
    bound, with advice; not reported as the target's capacity."""
    cap = loadkit.capacity(start=500, step_seconds=3, users=2, items="100", payload_bytes="64",
                           server_create_delay="0.05", results_dir=str(tmp_path),
                           progress=False)
    assert cap.limited_by == "client"
    assert cap.lower_bound
    assert "lower bound" in cap.answer["note"]
    assert cap.knee is not None
    assert cap.knee <= 2 / 0.05 * 100 * 1.1
    assert Capacity.load(cap.path).knee == cap.knee
    steps = cap.steps
    assert list(steps.index) == list(range(1, len(steps) + 1))
    failed = steps[~steps["held"].astype(bool)]
    assert (failed["lag_p95_ms"] > failed["service_p95_ms"]).all()
    assert cap.plot() is not None


def test_search_with_workers_sets_each_steps_rate_on_every_worker(tmp_path):
    """locust --processes 2 --capacity true: the master's search finds the knee from both
    workers' records."""
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(Path(__file__).parents[2] / "locustfiles"
                                                   / "stream.py"),
         "--headless", "-u", "16", "-r", "16", "-t", "150s", "--processes", "2",
         "--capacity", "true", "--capacity-start", "2000", "--step-seconds", "2",
         "--server-ingest-rate", "10000", "--results-dir", str(tmp_path)],
        env=_env(), capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    cap = Capacity.load(run_dir)
    assert cap.limited_by == "target_ingest"
    assert 9_000 <= cap.knee <= 11_000
    workers = set(read_records(run_dir).column("worker_id").to_pylist())
    assert len(workers) == 2
    assert not cap.steps["client_cpu"].isna().any()  # the workers' CPU reached the master
