"""A worker whose clock is 2 s off: its offset from the master is measured and kept in
run.json, and its schedule and records are in the master's time, as without the offset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import LOCUSTFILE, clean_env, free_port, locust_argv

pytestmark = pytest.mark.slow

SKEWED = """\
import sys
import time
_real, _skew = time.time, float(sys.argv[1])
time.time = lambda: _real() + _skew  # this host's clock, off by argv[1] seconds
sys.argv = ["locust", *sys.argv[2:]]
from locust.main import main
sys.exit(main())
"""


def _run(tmp_path: Path, skew: float) -> tuple[dict, list[dict]]:
    """A headless master and one worker whose clock is ``skew`` s ahead; open model, 40
    batches/s for 6 s; run.json and the records."""
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED)
    port = str(free_port())  # locust's ZMQ master port cannot be bound as port 0
    common = dict(cwd=tmp_path, env=clean_env(), text=True, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    master = subprocess.Popen(locust_argv(
        "--master", "--headless", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "-u", "8", "-r", "8", "-t", "6s", "--items", "20",
        "--payload-bytes", "64", "--arrival-rate", "40"), **common)
    worker = subprocess.Popen([sys.executable, str(script), str(skew), "-f", str(LOCUSTFILE),
                               "--worker", "--master-host", "127.0.0.1", "--master-port", port],
                              **common)
    try:
        out, err = master.communicate(timeout=90)
        worker.communicate(timeout=30)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    assert master.returncode == 0, (out + err)[-3000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    return (json.loads((run_dir / "run.json").read_text()),
            pq.read_table(run_dir / "records.parquet").to_pylist())


def test_a_skewed_worker_schedules_and_records_in_the_master_s_time(tmp_path):
    """Offset measured as -2 s (±50 ms); records inside the run's own time span; batches,
    drops and latency from the intended start as in a run without the offset."""
    (tmp_path / "skewed").mkdir()
    (tmp_path / "plain").mkdir()
    meta, rows = _run(tmp_path / "skewed", 2.0)
    base_meta, base_rows = _run(tmp_path / "plain", 0.0)
    (clock,) = meta["clock_offsets"].values()
    assert clock["offset_s"] == pytest.approx(-2.0, abs=0.05)
    (base_clock,) = base_meta["clock_offsets"].values()
    assert base_clock["offset_s"] == pytest.approx(0.0, abs=0.05)
    for m, rs in ((meta, rows), (base_meta, base_rows)):
        assert all(m["started_at"] - 1 <= r["intended_at"] <= m["ended_at"] for r in rs)
        assert all(m["started_at"] - 1 <= r["ended_at"] <= m["ended_at"] for r in rs)
        assert not [r for r in rs if r["outcome"] == "dropped"]
        late = sorted(r["total_from_intended_ms"] for r in rs)
        assert late[int(0.95 * len(late))] < 250, late[-10:]
    assert len(rows) == pytest.approx(len(base_rows), rel=0.1)
