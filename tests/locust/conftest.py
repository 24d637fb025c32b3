"""Fixtures for real locust runs: each test starts ``locust`` as a subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "locustfiles" / "stream.py"
LOCUST = str(Path(sys.executable).with_name("locust"))


@dataclasses.dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def run_dirs(self) -> list[Path]:
        results = self.cwd / "results"
        return sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []

    @property
    def run_dir(self) -> Path:
        dirs = self.run_dirs()
        assert len(dirs) == 1, (dirs, self.output[-3000:])
        return dirs[0]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TRIGGER_* or LOCUST_* settings of the developer."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback port free now, for locust's master (ZMQ) port only: the master could bind
    port 0 but never says which port it got, and its workers must be told the port, so it is
    picked here, released, then bound by the master (everything else binds port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes(n: int) -> tuple[str, ...]:
    """``--processes n`` on a free port, not locust's default 5557 (two suites can run)."""
    port = str(free_port())
    return ("--processes", str(n), "--master-bind-port", port, "--master-port", port)


def locust_argv(*args: str) -> list[str]:
    return [LOCUST, "-f", str(LOCUSTFILE), *args]


@contextlib.contextmanager
def master_and_workers(tmp_path, *master_args: str, workers: int = 2):
    """A locust master (headless, loopback, waiting for ``workers``) and its workers, as
    subprocesses in ``tmp_path``; any still running at the end are killed."""
    port = free_port()
    common = dict(cwd=tmp_path, env=clean_env(), text=True, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    master = subprocess.Popen(locust_argv(
        "--master", "--headless", "--expect-workers", str(workers), "--master-bind-host",
        "127.0.0.1", "--master-bind-port", str(port), *master_args), **common)
    procs = [master] + [subprocess.Popen(locust_argv(
        "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)), **common)
        for _ in range(workers)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def run_locust(tmp_path):
    """Run locust to completion in ``tmp_path`` (its own process group, killed on timeout)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> LocustRun:
        started = time.monotonic()
        proc = subprocess.Popen(
            locust_argv(*args), cwd=tmp_path, env=env or clean_env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"locust did not stop by itself within {timeout} s:\n{err[-3000:]}")
        return LocustRun(proc.returncode, out, err, tmp_path, time.monotonic() - started)

    return run
