"""Real locust runs of locustfiles/stream.py against the reference server on loopback."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from loadkit.records import RECORDS_JSONL, RECORDS_PARQUET, read_records, read_run_meta
from loadkit.server import ReferenceServer
from tests.locust.conftest import clean_env, locust_argv, master_and_workers, processes

pytestmark = pytest.mark.slow

SMALL = ("--items", "20", "--payload-bytes", "64")
KEY = "tr_dev_Distinctive_Key_7f3a9c21"


def batch_requests(stats_json) -> int:
    """The number of "batch" requests in locust's final statistics (``--json-file``)."""
    with open(stats_json) as fh:
        rows = {(r["method"], r["name"]): r for r in json.load(fh)}
    return int(rows[("BATCH", "batch")]["num_requests"])


def all_files_text(root) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[path] = fh.read().decode("utf-8", "replace")
    return out


def test_readme_command_closed_model_records_csv_and_key_never_written(run_locust, tmp_path):
    """The README's main command (shorter): every batch recorded, the key nowhere on disk."""
    run = run_locust(
        "--headless", "-u", "4", "-r", "4", "-t", "4s", *SMALL,
        "--json-file", "stats", "--csv", "stats", "--html", "report.html",
        "--threshold", "seal_rate >= 0.999", "--threshold", "violations == 0",
        env=clean_env(TRIGGER_SECRET_KEY=KEY),
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    run_dir = run.run_dir
    assert {p.name for p in run_dir.iterdir()} == {"run.json", RECORDS_JSONL, RECORDS_PARQUET}
    table = read_records(run_dir)
    assert table.num_rows > 20
    assert table.num_rows == batch_requests(tmp_path / "stats.json")  # nothing lost
    assert set(table.column("outcome").to_pylist()) == {"sealed"}
    assert set(table.column("worker_id").to_pylist()) == {"local"}
    assert len(set(table.column("seq").to_pylist())) == table.num_rows
    assert sorted(set(table.column("user_id").to_pylist())) == [0, 1, 2, 3]
    meta = read_run_meta(run_dir)
    assert meta["run_id"] == run_dir.name
    assert meta["ended_at"] > meta["started_at"]
    assert meta["loadkit_version"]
    assert meta["locust_version"]
    assert meta["target"].startswith("http://127.0.0.1:")
    assert meta["embedded_server"]["secret_keys"] == "<1 key(s)>"
    assert meta["options"]["items"] == "20"
    assert meta["records"] == table.num_rows
    assert [t["passed"] for t in meta["thresholds"]] == [True, True]
    assert "seal_rate >= 0.999" in run.stdout
    # the key: not in any file the run wrote, nor in its output
    files = all_files_text(tmp_path)
    assert any(p.endswith("report.html") for p in files)
    assert [p for p, text in files.items() if KEY in text] == []
    assert KEY not in run.output
    # loadkit check on the finished run
    check = subprocess.run(
        [sys.executable, "-m", "loadkit", "check", str(run_dir), "--threshold", "batches > 0",
         "--threshold", "p99(total_ms) < 60000"], capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "2 passed, 0 failed" in check.stdout
    check = subprocess.run(
        [sys.executable, "-m", "loadkit", "check", str(run_dir),
         "--threshold", "p50(total_ms) < 0"],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 3
    assert "FAIL" in check.stdout
    check = subprocess.run(
        [sys.executable, "-m", "loadkit", "check", str(run_dir), "--threshold", "p50(nope) < 1"],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 2
    assert "'nope' is not a numeric record field" in check.stderr


def test_failing_threshold_from_config_file_sets_exit_code_3(run_locust, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.locust]\n"
        'items = "10"\n'
        'threshold = ["p95(total_ms) < 0.0001", "seal_rate >= 0.999"]\n'
    )
    run = run_locust("--headless", "-u", "2", "-r", "2", "-t", "2s")
    assert run.returncode == 3, run.output[-3000:]
    lines = [line.strip() for line in run.stdout.splitlines()]  # the loadkit summary block
    assert any(line.startswith("✗ p95(total_ms) < 0.0001") and line.endswith(" ms")
               for line in lines), run.stdout
    assert any(line.startswith("✓ seal_rate >= 0.999") for line in lines)
    assert "1 passed, 1 failed (exit code 3)" in run.stdout
    meta = read_run_meta(run.run_dir)
    assert meta["options"]["items"] == "10"
    assert meta["exit_code"] == 3


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--threshold", "p95(total_ms) <<< 5"), "threshold 'p95(total_ms) <<< 5' does not parse"),
        (("--threshold", "latency < 5"), "unknown metric 'latency'"),
        (("--items", "lots"), "items: 'lots' is not valid"),
        (("--arrival-rate", "-1"), "arrival_rate: '-1' is not valid"),
        (("--retry-resend", "some"), "retry_resend: 'some' is not valid"),
        (("--server-error-rate", "2"), "server_error_rate"),
    ],
)
def test_bad_options_are_rejected_at_start_up(run_locust, args, says):
    run = run_locust("--headless", "-u", "1", "-t", "5s", *args, timeout=30)
    assert run.returncode == 2, run.output[-3000:]
    assert says in run.stderr
    assert "Traceback" not in run.output
    assert run.run_dirs() == []  # nothing written


def test_unwritable_results_dir_fails_at_start_up(run_locust, tmp_path):
    (tmp_path / "blocked").write_text("a file, not a directory")
    run = run_locust("--headless", "-u", "1", "-t", "5s", "--results-dir", "blocked/results",
                     timeout=30)
    assert run.returncode == 2, run.output[-3000:]
    assert "cannot write to results directory blocked/results" in run.stderr
    assert "Traceback" not in run.output


def test_wrong_key_stops_early_with_a_clear_message(run_locust):
    with ReferenceServer(secret_keys=("tr_dev_the_right_key",)) as server:
        run = run_locust(
            "--headless", "-u", "2", "-r", "2", "-t", "30s", "--host", server.url, *SMALL,
            env=clean_env(TRIGGER_SECRET_KEY="tr_dev_a_wrong_key"), timeout=40,
        )
    assert run.returncode == 4, run.output[-3000:]
    assert run.elapsed < 20
    assert "rejected the secret key (HTTP 401) on every batch" in run.stderr
    assert "TRIGGER_SECRET_KEY" in run.stderr
    assert "Traceback" not in run.output
    table = read_records(run.run_dir)
    assert set(table.column("error_kind").to_pylist()) == {"auth"}
    assert "tr_dev_a_wrong_key" not in str(all_files_text(run.cwd))


def test_host_without_key_is_refused(run_locust):
    run = run_locust("--headless", "-u", "1", "-t", "5s", "--host", "http://127.0.0.1:9",
                     timeout=30)
    assert run.returncode == 2
    assert "TRIGGER_SECRET_KEY is not set" in run.stderr


def test_sigkill_leaves_readable_records(tmp_path):
    proc = subprocess.Popen(
        locust_argv("--headless", "-u", "2", "-r", "2", "-t", "60s", *SMALL), cwd=tmp_path,
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        jsonl = None
        while time.monotonic() < deadline:
            found = list((tmp_path / "results").glob(f"*/{RECORDS_JSONL}"))
            if found and found[0].stat().st_size > 0:
                jsonl = found[0]
                break
            time.sleep(0.2)
        assert jsonl is not None, "no records flushed within 30 s"
        time.sleep(1.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # locust and its embedded server
        proc.wait()
    run_dir = jsonl.parent
    assert not (run_dir / RECORDS_PARQUET).exists()
    table = read_records(run_dir)
    assert table.num_rows > 0
    assert set(table.column("outcome").to_pylist()) == {"sealed"}
    assert read_run_meta(run_dir)["ended_at"] is None
    check = subprocess.run(
        [sys.executable, "-m", "loadkit", "check", str(run_dir), "--threshold", "batches > 0"],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_processes_2_records_all_at_the_master(run_locust, tmp_path):
    run = run_locust("--headless", "-u", "4", "-r", "4", "-t", "4s", *processes(2),
                     *SMALL, "--json-file", "stats")
    assert run.returncode == 0, run.output[-3000:]
    table = read_records(run.run_dir)
    workers = Counter(table.column("worker_id").to_pylist())
    assert len(workers) == 2, workers
    assert all(n > 5 for n in workers.values())
    assert "local" not in workers
    assert table.num_rows == batch_requests(tmp_path / "stats.json")
    assert len(set(table.column("seq").to_pylist())) == table.num_rows
    assert set(table.column("run_id").to_pylist()) == {run.run_dir.name}


def test_master_and_two_workers_on_loopback(tmp_path):
    """A master and two workers on loopback: every record reaches the master's run folder."""
    with master_and_workers(tmp_path, "-u", "4", "-r", "4", "-t", "4s", *SMALL,
                            "--json-file", "stats") as procs:
        outs = [p.communicate(timeout=60) for p in procs]
    master, *workers = procs
    assert master.returncode == 0, outs[0][1][-3000:]
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outs[1:]]
    (run_dir,) = list((tmp_path / "results").iterdir())
    table = read_records(run_dir)
    workers_seen = Counter(table.column("worker_id").to_pylist())
    assert len(workers_seen) == 2, workers_seen
    assert table.num_rows == batch_requests(tmp_path / "stats.json")


def test_open_model_keeps_the_timetable(run_locust):
    run = run_locust("--headless", "-u", "4", "-r", "4", "-t", "4s", *SMALL,
                     "--arrival-rate", "25")
    assert run.returncode == 0, run.output[-3000:]
    rows = read_records(run.run_dir).to_pylist()
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["dropped"] == 0
    assert 0.6 * 25 * 4 <= outcomes["sealed"] <= 25 * 4 + 5, outcomes
    intended = sorted(r["intended_at"] for r in rows)
    gaps = [b - a for a, b in itertools.pairwise(intended)]
    assert min(gaps) == pytest.approx(0.04, abs=1e-6)
    assert max(gaps) == pytest.approx(0.04, abs=1e-6)
    for r in rows:
        assert r["total_from_intended_ms"] >= r["total_ms"] - 1.0


def test_open_model_counts_dropped_starts_when_the_target_is_slow(run_locust):
    run = run_locust("--headless", "-u", "2", "-r", "2", "-t", "4s", *SMALL,
                     "--arrival-rate", "40", "--drop-after", "0.2",
                     "--server-create-delay", "0.25")
    assert run.returncode == 1, run.output[-3000:]  # locust's own code: dropped are failures
    rows = read_records(run.run_dir).to_pylist()
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["sealed"] > 0
    assert outcomes["dropped"] > outcomes["sealed"], outcomes  # capacity ~8/s of 40/s
    sent = [r for r in rows if r["outcome"] == "sealed"]
    late = sum(r["total_from_intended_ms"] - r["total_ms"] for r in sent) / len(sent)
    assert late > 0
    assert "BATCH    dropped" in run.stderr  # in locust's own statistics
