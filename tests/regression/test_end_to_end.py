"""The regression gate end to end: real runs, real files, the loadkit command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.records import SCHEMA_VERSION
from loadkit.regression import gate, load_baseline, write_baseline

pytestmark = pytest.mark.slow


def loadkit_cli(*args: str, cwd: Path | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m loadkit ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "loadkit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def baseline_json(real_runs, tmp_path_factory) -> Path:
    """The base run's baseline.json, written by the command line."""
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    proc = loadkit_cli("check", real_runs["base"], "--write-baseline", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"baseline written: {path} (")
    return path


def test_same_settings_are_not_flagged(real_runs, baseline_json):
    """A run with the same settings (at the same time) passes the gate against the base."""
    proc = loadkit_cli("check", real_runs["same"], "--baseline", baseline_json)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("regression check: passed")


def test_a_30_ms_create_delay_is_flagged(real_runs, baseline_json):
    """A run whose server delays every create by 30 ms fails the gate: exit 3, p95 named."""
    proc = loadkit_cli("check", real_runs["delayed"], "--baseline", baseline_json)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("regression check: FAILED (exit code 3) — ")
    assert "p95(total_ms) +" in first
    assert "server_create_delay 0 → 0.03" in proc.stdout


def test_baseline_json_compares_as_its_run_directory(real_runs, baseline_json):
    """The baseline.json gives the same table as the run directory it was written from."""
    from_dir = gate(real_runs["delayed"], real_runs["base"]).frame
    from_json = gate(real_runs["delayed"], baseline_json).frame
    assert from_dir.equals(from_json)
    assert baseline_json.stat().st_size < 20_000


def test_compare_prints_the_verdict_first(real_runs):
    """loadkit compare A B: the counts of verdicts first, then one row per figure; exit 0."""
    proc = loadkit_cli("compare", real_runs["base"], real_runs["delayed"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("comparison: ")
    assert "worse: " in lines[0]
    assert lines[1].split()[:2] == ["verdict", "figure"]
    row = next(line for line in lines if " p95(create_ms) " in line)
    assert row.startswith("worse ")
    assert "e+" not in proc.stdout
    assert "e-0" not in proc.stdout


def test_smoke_with_a_baseline_fails_on_a_regression(real_runs, baseline_json, tmp_path):
    """loadkit smoke --baseline: thresholds pass, the gate fails on a 30 ms create delay (3)."""
    proc = loadkit_cli("smoke", "--run-time", "3s", "--results-dir", tmp_path,
                       "--baseline", baseline_json, "--", "--server-create-delay", "0.03")
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "thresholds: 5 passed, 0 failed" in proc.stdout
    regression = (run_dir / "regression.txt").read_text()
    assert regression.startswith("regression check: FAILED")
    assert regression.strip() in proc.stdout


def _bad_input(proc: subprocess.CompletedProcess[str], path: Path, words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(path) in proc.stderr
    assert words in proc.stderr


def test_baseline_of_another_schema_version_exits_2(real_runs, baseline_json, tmp_path):
    """A baseline.json, or a run directory, of another schema version: one line, exit 2."""
    data = json.loads(baseline_json.read_text())
    data["schema_version"] = SCHEMA_VERSION - 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    _bad_input(loadkit_cli("check", real_runs["same"], "--baseline", old), old,
               f"schema version {SCHEMA_VERSION - 1}")
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    for name in ("run.json", "records.parquet"):
        (run_dir / name).write_bytes((real_runs["base"] / name).read_bytes())
    meta = json.loads((run_dir / "run.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (run_dir / "run.json").write_text(json.dumps(meta))
    _bad_input(loadkit_cli("smoke", "--baseline", run_dir), run_dir / "run.json",
               f"schema version {SCHEMA_VERSION + 1}")


def test_baseline_with_no_batches_exits_2(real_runs, baseline_json, tmp_path):
    """A baseline that holds no batches: one line naming the file, exit 2."""
    data = json.loads(baseline_json.read_text())
    data["batches"] = 0
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(data))
    _bad_input(loadkit_cli("check", real_runs["same"], "--baseline", empty), empty,
               "no batches")
    missing = tmp_path / "nope.json"
    _bad_input(loadkit_cli("compare", missing, real_runs["same"]), missing, "no such baseline")


def test_unknown_tolerance_figure_exits_2(real_runs, baseline_json):
    """--tolerance naming no figure: one line listing the figures, exit 2."""
    proc = loadkit_cli("check", real_runs["same"], "--baseline", baseline_json,
                       "--tolerance", "p95(total)=10%")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "unknown figure 'p95(total)'" in proc.stderr
    assert "p95(total_ms)" in proc.stderr


def test_load_baseline_keeps_what_the_comparison_needs(baseline_json):
    """A baseline keeps schema, per-window sums, latency histograms and settings."""
    found = load_baseline(baseline_json)
    assert found.schema_version == SCHEMA_VERSION
    assert found.batches > 100
    assert 20 <= found.n_windows <= 31
    assert found.total("seconds") == pytest.approx(found.duration_s, abs=1e-5)
    assert set(found.latency) == {"total_ms", "create_ms", "stream_ms"}
    assert found.settings["target"] == "embedded reference server"
    assert "results_dir" not in found.settings
    assert "run_id" not in found.settings
    again = write_baseline(found, baseline_json.with_name("copy.json"))
    assert json.loads(baseline_json.with_name("copy.json").read_text()) == again.to_json()


def test_locust_baseline_gates_the_run_at_its_end(baseline_json, tmp_path):
    """locust --baseline: a run 30 ms slower per create exits 3, prints the table and
    records the gate in run.json; a missing baseline stops locust at start-up with exit 2."""
    locustfile = Path(__file__).resolve().parents[2] / "locustfiles" / "stream.py"
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "2",
            "-r", "2", "-t", "4s", "--results-dir", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    slow = subprocess.run([*argv, "--server-create-delay", "0.03", "--baseline",
                           str(baseline_json)], capture_output=True, text=True, timeout=180,
                          check=False, env=env)
    assert slow.returncode == 3, slow.stdout[-3000:] + slow.stderr[-3000:]
    assert "regression check: FAILED" in slow.stdout
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["regression"]["passed"] is False
    assert meta["exit_code"] == 3
    missing = subprocess.run([*argv, "--baseline", str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=120, check=False, env=env)
    assert missing.returncode == 2
    assert "baseline" in missing.stderr
