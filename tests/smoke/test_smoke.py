"""The CI smoke load run: ``loadkit smoke`` as the README documents it, and ``.ci/smoke``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.records import read_records, read_run_meta

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's TRIGGER_* / LOCUST_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def smoke(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``loadkit smoke`` in ``cwd`` to completion."""
    return subprocess.run([sys.executable, "-m", "loadkit", "smoke", *args], cwd=cwd,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("## CI smoke load run", 1)[1].split("\n## ", 1)[0]


def test_readme_smoke_command_passes_against_the_embedded_server(tmp_path):
    """The README's command (shorter run) exits 0 and writes the run, report and table."""
    command = re.search(r"^loadkit smoke (.*?)\s+#", readme_section(), re.M)
    assert command is not None
    args = command.group(1).split()
    assert args == ["--run-time", "20s", "--results-dir", "results"]
    args[1] = "4s"
    proc = smoke(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert (run_dir / "report" / "report.html").stat().st_size > 10_000
    table = (run_dir / "thresholds.txt").read_text()
    assert "seal_rate >= 0.999" in table
    assert "thresholds: 5 passed, 0 failed" in table
    assert "loadkit summary" in proc.stdout  # the summary block holds the thresholds
    assert "✓ seal_rate >= 0.999" in proc.stdout
    assert "thresholds: 5 passed, 0 failed" in proc.stdout
    assert (run_dir / "locust.log").exists()
    assert read_records(run_dir).num_rows > 10
    meta = read_run_meta(run_dir)
    assert meta["embedded_server"] is not None
    assert len(meta["thresholds"]) == 5
    assert str(run_dir / "report" / "report.html") in proc.stdout


def test_failing_threshold_exits_3_and_still_writes_report_and_table(tmp_path):
    """A threshold that cannot pass gives exit code 3, a FAIL row, the report and the table."""
    proc = smoke(tmp_path, "--run-time", "3s", "--threshold", "p95(total_ms) < 0.001",
                 "--threshold", "batches > 0", "--results-dir", "out", "--", "--items", "10")
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    table = (run_dir / "thresholds.txt").read_text()
    assert re.search(r"^p95\(total_ms\) < 0\.001 .* FAIL$", table, re.M), table
    assert "1 passed, 1 failed" in table
    assert (run_dir / "report" / "report.html").exists()
    assert read_run_meta(run_dir)["options"]["items"] == "10"


def test_bad_threshold_and_unwritable_results_dir_fail_before_any_load(tmp_path):
    """A malformed threshold exits 2; an unwritable results directory exits non-zero at once."""
    proc = smoke(tmp_path, "--threshold", "p95(total_ms) <<< 1")
    assert proc.returncode == 2
    assert "does not parse" in proc.stderr
    (tmp_path / "blocked").write_text("a file, not a directory")
    proc = smoke(tmp_path, "--results-dir", "blocked/results", timeout=60)
    assert proc.returncode != 0
    assert "blocked/results" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ci_smoke_script_and_readme_workflow_run_the_command():
    """.ci/smoke is executable and runs 'loadkit smoke'; the README's workflow does too."""
    script = REPO / ".ci" / "smoke"
    assert os.access(script, os.X_OK)
    assert ".venv/bin/loadkit smoke" in script.read_text()
    assert ".ci/smoke" in (REPO / ".ci" / "run").read_text()
    yaml = pytest.importorskip("yaml")
    block = readme_section().split("```yaml\n", 1)[1].split("```", 1)[0]
    workflow = yaml.safe_load(block)
    steps = workflow["jobs"]["smoke"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert any(r.startswith("loadkit smoke ") for r in runs), runs
