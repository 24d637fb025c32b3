"""The master/worker paths of the locust adapter that a clean run never takes, with real
processes: a worker asking the master to stop, a failed send to the master, a worker that never
sends its last records, and records the master cannot write."""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from loadkit.records import RECORDS_JSONL, read_records, read_run_meta
from loadkit.vocabulary import ExitCode

from .conftest import LOCUSTFILE, clean_env, free_port, locust_argv

pytestmark = pytest.mark.slow

SMALL = ("--items", "20", "--payload-bytes", "64")
WRONG_KEY = "tr_dev_not_the_servers_key_31f0"

FLAKY_SENDS = """\
from locust import events
from locust.exception import RPCSendError

from loadkit.locustfiles.stream import *  # noqa: F403

failures = [2]


@events.init.add_listener
def fail_the_first_record_sends(environment, runner=None, **_kw):
    # the worker's first two sends of records fail as a send to an unreachable master does
    # (locust raises RPCSendError); every later send goes through
    send = runner.send_message

    def flaky(msg_type, *args, **kwargs):
        if msg_type == "loadkit_records" and failures[0] > 0:
            failures[0] -= 1
            raise RPCSendError("ZMQ sent failure (injected)")
        return send(msg_type, *args, **kwargs)

    runner.send_message = flaky
"""
"""A worker's locustfile whose first two sends of records fail. ZMQ queues a worker's messages
while its master is away and fails a send only at its high-water mark (1,000 messages, many
minutes of a worker's sends), so the failure is injected where locust would raise it."""

NEVER_ANSWERS = """\
import loadkit.locust.worker as worker
from loadkit.locustfiles.stream import *  # noqa: F403


def never_answer(self, environment, msg, **_kw):
    pass  # hung: it keeps running (and heartbeating) but never sends its last records


worker.WorkerRole._on_final = never_answer
"""
"""A worker's locustfile that ignores ``loadkit_final``: alive for locust (a SIGSTOPped worker
stops heartbeating, so locust marks it missing and the master rightly stops waiting for it)."""

SHORT_GRACE = """\
import loadkit.locust.master as master
from loadkit.locustfiles.stream import *  # noqa: F403

master.FINAL_GRACE = 2.0  # seconds beyond --stop-timeout (15 by default: a long test)
"""
"""A master's locustfile with a 2 s grace for the workers' last records."""


@contextlib.contextmanager
def cluster(tmp_path: Path, *master_args: str, workers: list[dict[str, str]],
            master_file: Path = LOCUSTFILE,
            master_prefix: Sequence[str] = ()) -> Iterator[list[subprocess.Popen]]:
    """A headless locust master on loopback (its command after ``master_prefix``) and one
    worker per entry of ``workers`` (its ``env`` additions, its ``locustfile``), as
    subprocesses in ``tmp_path``; any still running at the end are killed."""
    port = str(free_port())  # locust's ZMQ master port cannot be bound as port 0
    common = dict(cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  stdin=subprocess.DEVNULL, start_new_session=True)
    master = subprocess.Popen(
        [*master_prefix, *locust_argv()[:2], str(master_file), "--master", "--headless",
         "--expect-workers", str(len(workers)), "--master-bind-host", "127.0.0.1",
         "--master-bind-port", port, *master_args], env=clean_env(), **common)
    procs = [master]
    for spec in workers:
        env = clean_env(**{k: v for k, v in spec.items() if k != "locustfile"})
        procs.append(subprocess.Popen(
            [*locust_argv()[:2], spec.get("locustfile", str(LOCUSTFILE)), "--worker",
             "--master-host", "127.0.0.1", "--master-port", port], env=env, **common))
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()


def finish(procs: list[subprocess.Popen], timeout: float = 90) -> list[tuple[str, str]]:
    """Every process's (stdout, stderr) once it has ended (the master first)."""
    return [p.communicate(timeout=timeout) for p in procs]


def logged_at(log: str, text: str) -> float:
    """The time (s) of the first locust log line holding ``text``."""
    line = next(line for line in log.splitlines() if text in line)
    stamp = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def run_dir_of(tmp_path: Path) -> Path:
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    return run_dir


def test_worker_rejected_key_asks_the_master_to_stop(tmp_path):
    """A worker whose key the target rejects asks the master to stop (loadkit_abort), which
    stops the run at once with the worker's reason and exit code 4."""
    started = time.monotonic()
    with cluster(tmp_path, "-u", "2", "-r", "2", "-t", "60s", *SMALL, "--loglevel", "DEBUG",
                 workers=[{"TRIGGER_SECRET_KEY": WRONG_KEY}]) as procs:
        (_, master_err), (_, worker_err) = finish(procs)
    elapsed = time.monotonic() - started
    master = procs[0]
    assert master.returncode == ExitCode.ABORTED, master_err[-3000:]
    assert elapsed < 30, elapsed  # not the 60 s of -t
    reason = ("the target rejected the secret key (HTTP 401) on every batch (3 so far): set "
              "TRIGGER_SECRET_KEY to a secret key of the target's environment")
    assert f"loadkit: {reason}" in worker_err  # the worker's own watch asked …
    assert "stopping the run early" in worker_err
    assert WRONG_KEY not in worker_err + master_err
    # … and the master stopped on that message: the last one it received before it stopped
    # (locust logs, at DEBUG, each custom message the master receives); its own watch of the
    # records says the same, but only on receiving the records, up to a second later
    stop = master_err.index(f"loadkit: {reason}\nloadkit: stopping the run early.")
    received = [line for line in master_err[:stop].splitlines() if "Received loadkit_" in line]
    assert received, master_err[-3000:]
    assert "Received loadkit_abort message from worker" in received[-1], received
    meta = read_run_meta(run_dir_of(tmp_path))
    assert meta["aborted"] == reason
    assert meta["exit_code"] == ExitCode.ABORTED
    rows = read_records(run_dir_of(tmp_path)).to_pylist()
    assert rows
    assert {(r["error_kind"], r["outcome"]) for r in rows} == {("auth", "failed")}


def test_failed_sends_keep_the_records_until_a_later_send(tmp_path):
    """Records a worker could not send stay buffered and reach the master with a later send:
    none lost, none twice."""
    flaky = tmp_path / "flaky_sends.py"
    flaky.write_text(FLAKY_SENDS, encoding="utf-8")
    with cluster(tmp_path, "-u", "2", "-r", "2", "-t", "3s", *SMALL,
                 workers=[{"locustfile": str(flaky)}]) as procs:
        (_, master_err), (_, worker_err) = finish(procs)
    master, worker = procs
    assert master.returncode == 0, master_err[-3000:]
    assert worker.returncode == 0, worker_err[-3000:]
    assert worker_err.count("could not send") == 2, worker_err[-3000:]
    assert "records to the master yet" in worker_err
    run_dir = run_dir_of(tmp_path)
    rows = read_records(run_dir).to_pylist()
    server = read_run_meta(run_dir)["server_stats"]
    # every batch the server made is recorded exactly once (dropped rows would fall short)
    assert len(rows) == server["batches_created"] == server["batches_sealed"]
    assert len({r["seq"] for r in rows}) == len({r["batch_id"] for r in rows}) == len(rows)
    assert {r["outcome"] for r in rows} == {"sealed"}


def test_master_stops_waiting_for_last_records_at_its_timeout(tmp_path):
    """A worker that never answers loadkit_final is waited for until the stop timeout plus the
    grace, then the master writes the run with what it has."""
    master_file = tmp_path / "short_grace.py"
    master_file.write_text(SHORT_GRACE, encoding="utf-8")
    mute = tmp_path / "never_answers.py"
    mute.write_text(NEVER_ANSWERS, encoding="utf-8")
    started = time.monotonic()
    with cluster(tmp_path, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "1", *SMALL,
                 workers=[{}, {"locustfile": str(mute)}], master_file=master_file) as procs:
        (_, master_err), *_ = finish(procs)
    elapsed = time.monotonic() - started
    master = procs[0]
    assert master.returncode == 0, master_err[-3000:]
    assert master_err.count("some workers did not send their last records within 3 s") == 1
    # it asked at the end of -t and gave up 3 s later (--stop-timeout 1 + the 2 s grace)
    waited = logged_at(master_err, "some workers did not send") - logged_at(
        master_err, "--run-time limit reached")
    assert 2.9 <= waited <= 6, waited
    run_dir = run_dir_of(tmp_path)
    meta = read_run_meta(run_dir)
    assert meta["ended_at"] is not None
    rows = read_records(run_dir).to_pylist()
    assert len(rows) == meta["records"]
    assert len(Counter(r["worker_id"] for r in rows)) == 2  # what each sent during the run
    assert elapsed < 40, elapsed


def file_size_limit(limit: int) -> list[str]:
    """A command prefix that runs the rest of the command line with RLIMIT_FSIZE ``limit``."""
    return [sys.executable, "-c", "import os, resource, sys; resource.setrlimit(resource."
            f"RLIMIT_FSIZE, ({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])"]


def test_records_write_failure_at_the_master_stops_the_run(tmp_path):
    """Records the master cannot write (a file size limit: EFBIG, as a full disk gives
    ENOSPC) stop the run at once, exit 2, with the reason, and what was written stays
    readable."""
    limit = 64 * 1024  # RLIMIT_FSIZE of the master process: needs no root, unlike a full disk
    started = time.monotonic()
    with cluster(tmp_path, "-u", "4", "-r", "4", "-t", "60s", *SMALL,
                 workers=[{}, {}], master_prefix=file_size_limit(limit)) as procs:
        (_, master_err), *_ = finish(procs)
    elapsed = time.monotonic() - started
    master = procs[0]
    assert master.returncode == ExitCode.CONFIG, master_err[-3000:]
    assert elapsed < 30, elapsed  # not the 60 s of -t
    run_dir = run_dir_of(tmp_path)
    assert (f"loadkit: error: cannot append to results/{run_dir.name}/{RECORDS_JSONL}: File "
            "too large; the records of this run are incomplete\nloadkit: stopping the run early."
            ) in master_err
    assert "Traceback" not in master_err
    assert (run_dir / RECORDS_JSONL).stat().st_size <= limit
    meta = read_run_meta(run_dir)
    assert "File too large" in meta["write_error"]
    assert meta["exit_code"] == ExitCode.CONFIG
    assert read_records(run_dir).num_rows > 20  # the lines written before stay readable
