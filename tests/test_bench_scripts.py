"""Tests that the benchmark scripts still run (tiny sizes; their figures are not asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    "argv",
    [
        ["generators.py", "--batches", "3", "--items", "100"],
        ["analysis.py", "--records", "2000", "--repeat", "1"],
        ["server.py", "--items", "2000", "--repeat", "1", "--big-mb", "4", "--big-seconds", "5"],
        ["client.py", "--items", "2000", "--payload-bytes", "100", "--runs", "1"],
        ["capacity.py", "--runs", "1", "--step-seconds", "1", "--ingest-rate", "4000",
         "--start", "2000"],
        ["master.py", "--workers", "1", "--start", "2000", "--max-steps", "2",
         "--step-seconds", "2", "--finish"],
    ],
)
def test_bench_script_runs(argv):
    """Each bench script runs to its ratio line with tiny sizes."""
    result = subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:]],
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio" in result.stdout.lower() or "÷" in result.stdout
