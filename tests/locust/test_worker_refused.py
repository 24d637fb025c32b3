"""A worker with another loadkit version or other run options is refused at connect, in one
line on each side, and none of its records enter the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import loadkit

from .conftest import LOCUSTFILE, clean_env, free_port, locust_argv

pytestmark = pytest.mark.slow

OTHER_VERSION = """\
import sys
import loadkit
loadkit.__version__ = "0.0.0-other"
from locust.main import main
sys.argv = ["locust", *sys.argv[1:]]
sys.exit(main())
"""


def _run(tmp_path: Path, refused_argv: list[str], *, refused_first: bool = False
         ) -> tuple[subprocess.CompletedProcess, str, str]:
    """A headless master expecting one worker, a good worker and the one to refuse (after
    the good one, or alone first: refused and gone before the good one starts); the master's
    result, its output and the refused worker's stderr."""
    port = str(free_port())  # locust's ZMQ master port cannot be bound as port 0
    common = dict(cwd=tmp_path, env=clean_env(), text=True, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    master = subprocess.Popen(locust_argv(
        "--master", "--headless", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "-u", "2", "-r", "2", "-t", "4s", "--items", "20",
        "--payload-bytes", "64"), **common)
    connect = ("--worker", "--master-host", "127.0.0.1", "--master-port", port)
    procs = [master]
    try:
        if not refused_first:
            procs.append(good := subprocess.Popen(locust_argv(*connect), **common))
        procs.append(bad := subprocess.Popen([*refused_argv, "-f", str(LOCUSTFILE), *connect],
                                             **common))
        _, bad_err = bad.communicate(timeout=60)
        if refused_first:
            procs.append(good := subprocess.Popen(locust_argv(*connect), **common))
        out, err = master.communicate(timeout=90)
        good.communicate(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    assert bad.returncode == 2, bad_err
    return subprocess.CompletedProcess(master.args, master.returncode, out, err), out + err, \
        bad_err


def _records(tmp_path: Path) -> list[dict]:
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "run.json").read_text())["exit_code"] in (None, 0)
    return pq.read_table(run_dir / "records.parquet").to_pylist()


def test_a_worker_with_other_options_is_refused(tmp_path):
    """A worker given --items 7 against a master's 20 is refused; the run is the good
    worker's alone."""
    locust = str(Path(sys.executable).with_name("locust"))
    master, output, bad_err = _run(tmp_path, [locust, "--items", "7"])
    assert master.returncode == 0, output[-3000:]
    lines = [line for line in bad_err.splitlines() if line.startswith("loadkit:")]
    assert lines == ["loadkit: error: the master refused this worker: --items 7 (the "
                     "master's: 20)"]
    assert output.count("loadkit: refused worker") == 1
    rows = _records(tmp_path)
    assert rows
    assert len({r["worker_id"] for r in rows}) == 1
    assert {r["run_count"] for r in rows} == {20}


def test_a_worker_of_another_loadkit_version_is_refused(tmp_path):
    """A worker of another loadkit version, alone and first, is refused with both versions
    named, and the run goes on with the worker that comes next."""
    script = tmp_path / "other_version.py"
    script.write_text(OTHER_VERSION)
    master, output, bad_err = _run(tmp_path, [sys.executable, str(script)],
                                   refused_first=True)
    assert master.returncode == 0, output[-3000:]
    assert f"the master refused this worker: loadkit 0.0.0-other (the master's: " \
        f"{loadkit.__version__})" in bad_err
    assert len({r["worker_id"] for r in _records(tmp_path)}) == 1
