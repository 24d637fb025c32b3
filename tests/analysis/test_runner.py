"""loadkit.run() from a process that mimics a Jupyter kernel: locust only in the subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from loadkit.errors import ConfigError

KERNEL = """
import sys, warnings
warnings.simplefilter("error")
import loadkit
run = loadkit.run(users=2, run_time="{run_time}", items="20", payload_bytes="64",
                  results_dir=sys.argv[1], progress=False)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent"))
assert not bad, bad
s = run.summary()
print("RESULT", run.path, run.exit_code, run.interrupted, s["batches"], s["seal_rate"], flush=True)
"""


def _env():
    """The environment without the developer's TRIGGER_*/LOCUST_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _result(stdout):
    """The RESULT line's fields."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT"))
    return line.split()[1:]


@pytest.mark.slow
def test_run_from_a_kernel_like_process(tmp_path):
    """A short run against the embedded server returns a loaded Run; locust never imported."""
    proc = subprocess.run([sys.executable, "-c", KERNEL.format(run_time="2s"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, code, interrupted, batches, seal_rate = _result(proc.stdout)
    assert (code, interrupted) == ("0", "False")
    assert int(batches) > 10
    assert float(seal_rate) == 1.0
    assert (tmp_path / os.path.basename(path) / "locust.log").exists()
    assert (tmp_path / os.path.basename(path) / "records.parquet").exists()


@pytest.mark.slow
def test_interrupt_stops_cleanly_and_returns_the_records(tmp_path):
    """SIGINT (the kernel's stop button) during a long run stops locust and returns the run."""
    proc = subprocess.Popen([sys.executable, "-c", KERNEL.format(run_time="120s"),
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*/records.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - started < 60
    _, _, interrupted, batches, _ = _result(out)
    assert interrupted == "True"
    assert int(batches) > 0


def test_bad_options_are_refused_before_anything_starts(tmp_path):
    """A bad keyword is the options parser's ConfigError, raised in the caller's process."""
    import loadkit  # noqa: PLC0415

    with pytest.raises(ConfigError, match="payload_bytes"):
        loadkit.run(run_time="1s", payload_bytes="lots", results_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="a run setting"):
        loadkit.run(run_time="1s", colour="blue", results_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="run_time"):
        loadkit.run(run_time="soon", results_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())
