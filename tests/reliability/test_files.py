"""Reliability of our own files: atomic or append-only writes, full or read-only disks fail
loudly at start, and the secret key is in no file or log a run produces."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.errors import RecordsError
from loadkit.generators import BatchSpec
from loadkit.records import (
    RECORDS_JSONL,
    RecordWriter,
    read_records,
    write_parquet,
    write_run_meta,
)
from loadkit.report import write_report
from tests.campaign.conftest import ExternalServer, clean_env, files_under, locust_argv

KEY = "tr_dev_NEVER_WRITE_ME_9c4e1f2a7b"
_PRIVILEGED = "privilege-dependent:"  # tests/conftest.py's PRIVILEGED


def _mount_tmpfs(path: Path, *options: str) -> None:
    """Mount a small tmpfs at ``path`` or skip the test (mounting needs root and CAP_SYS_ADMIN);
    the skip is named in the run's summary (tests/conftest.py, privilege-dependent)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                               str(path)], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{_PRIVILEGED} a full disk needs a small tmpfs, which cannot be mounted "
                    f"here (root with CAP_SYS_ADMIN can): {exc}")
    if proc.returncode != 0:
        problem = (proc.stderr.strip() or "failed").splitlines()[0]
        pytest.skip(f"{_PRIVILEGED} a full disk needs a small tmpfs, which cannot be mounted "
                    f"here (root with CAP_SYS_ADMIN can): {problem}")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount tmpfs file systems under tmp_path (skipped where not permitted); unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, *options: str) -> Path:
        path = tmp_path / name
        _mount_tmpfs(path, *options)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _fill(path: Path) -> None:
    """Write into ``path`` until the file system is full."""
    with contextlib.suppress(OSError), open(path / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def _locust(cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(locust_argv(*args), cwd=cwd, env=env or clean_env(), text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout,
                          check=False)


def _small_run(run_dir: Path, url: str) -> None:
    """A finished run directory with a few real records sent to ``url``, written as locust does."""
    run_dir.mkdir()
    spec = BatchSpec.parse(items="10", payload_bytes="32")
    with BatchClient(url, wire.DEFAULT_LOCAL_SECRET_KEY) as client, \
            RecordWriter(run_dir / RECORDS_JSONL) as writer:
        for seq in range(5):
            writer.write(client.send(spec.batch(seq)).to_record(
                run_id=run_dir.name, worker_id="local", user_id=0))
    write_run_meta(run_dir, {"run_id": run_dir.name, "started_at": time.time() - 5,
                             "ended_at": time.time(), "options": {}})
    write_parquet(run_dir)


# --- atomic and append-only --------------------------------------------------------------


def test_record_writer_out_of_space_raises_a_clear_error(tmp_path):
    """An ENOSPC while appending records raises RecordsError naming the file and the cause."""
    writer = RecordWriter(tmp_path / RECORDS_JSONL, flush_interval=3600)
    writer.write({"seq": 0})
    writer.flush()

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    writer._fh = Full(writer._fh)
    writer.write({"seq": 1})
    with pytest.raises(RecordsError) as info:
        writer.flush()
    writer._fh = writer._fh.fh
    writer.close()
    assert f"cannot append to {tmp_path / RECORDS_JSONL}: No space left on device" in str(
        info.value)
    assert [json.loads(line) for line in (tmp_path / RECORDS_JSONL).read_text().splitlines()] \
        == [{"seq": 0}]


def test_report_and_run_json_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch,
                                                              reference_server):
    """A write that fails half-way leaves the previous run.json and report.html intact."""
    run_dir = tmp_path / "run"
    _small_run(run_dir, reference_server.url)
    report = write_report(run_dir)
    before_report = report.read_bytes()
    before_meta = (run_dir / "run.json").read_bytes()

    def fail(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(RecordsError, match="No space left on device"):
        write_report(run_dir)
    with pytest.raises(RecordsError, match="No space left on device"):
        write_run_meta(run_dir, {"run_id": "changed"})
    monkeypatch.undo()
    assert report.read_bytes() == before_report
    assert (run_dir / "run.json").read_bytes() == before_meta
    leftovers = [p.name for p in run_dir.rglob(".*.tmp")]
    assert leftovers == []
    assert read_records(run_dir).num_rows == 5


# --- full or read-only disks fail loudly at start ------------------------------------------


def test_full_disk_at_start_fails_before_any_load(tmp_path, tmpfs):
    """A results directory on a full file system: locust and loadkit smoke exit 2 at once."""
    disk = tmpfs("full", "size=256k")
    _fill(disk)
    proc = _locust(tmp_path, "--headless", "-u", "1", "-t", "30s", "--results-dir",
                   str(disk / "results"), timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    smoke = subprocess.run([sys.executable, "-m", "loadkit", "smoke", "--results-dir",
                            str(disk / "smoke")], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=60, check=False)
    assert smoke.returncode == 2, smoke.stderr[-3000:]
    assert "No space left on device" in smoke.stderr
    assert "Traceback" not in smoke.stderr


def test_read_only_results_dir_fails_at_start(tmp_path, read_only_dir):
    """A results directory in a folder that cannot be written (mode 0555, or a read-only mount
    for root) exits 2."""
    disk = tmp_path / "ro"
    why = read_only_dir(disk)
    started = time.monotonic()
    proc = _locust(tmp_path, "--headless", "-u", "1", "-t", "30s", "--results-dir",
                   str(disk / "results"), timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert why in proc.stderr
    assert "pass a writable --results-dir" in proc.stderr
    assert time.monotonic() - started < 20


def test_disk_full_mid_run_stops_the_run_with_the_reason(tmp_path, tmpfs):
    """Records filling a 512 KiB disk stop the run early, exit 2, and say why."""
    disk = tmpfs("small", "size=512k")
    started = time.monotonic()
    proc = _locust(tmp_path, "--headless", "-u", "2", "-r", "2", "-t", "40s", "--items", "5",
                   "--payload-bytes", "16", "--results-dir", str(disk), timeout=90)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert elapsed < 35, elapsed
    assert "No space left on device" in proc.stderr
    assert "the records of this run are incomplete" in proc.stderr
    (run_dir,) = [p for p in disk.iterdir() if p.is_dir()]
    assert read_records(run_dir).num_rows > 50  # what was written stays readable


# --- the secret key ------------------------------------------------------------------------


def test_secret_key_is_in_no_file_log_or_output_of_a_run(tmp_path):
    """A distinctive key used against 'loadkit serve': absent from results, locust files, output."""
    server = ExternalServer(KEY)
    server.start()
    env = clean_env(TRIGGER_SECRET_KEY=KEY)
    try:
        run = _locust(tmp_path, "--headless", "-u", "2", "-r", "2", "-t", "3s", "--host",
                      server.url, "--items", "10", "--payload-bytes", "32", "--verify", "true",
                      "--csv", "stats", "--csv-full-history", "--html", "locust.html",
                      "--json-file", "stats", "--logfile", "locust.log", "--loglevel", "DEBUG",
                      "--threshold", "batches > 0", env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
        report = subprocess.run([sys.executable, "-m", "loadkit", "report", str(run_dir)],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert report.returncode == 0, report.stderr[-3000:]
        smoke = subprocess.run([sys.executable, "-m", "loadkit", "smoke", "--host", server.url,
                                "--run-time", "3s", "--results-dir", "smoke"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=120,
                               check=False)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr[-3000:]
    finally:
        server.kill()
    files = files_under(tmp_path)
    names = {p.name for p in files}
    assert {"run.json", "records.parquet", "report.html", "stats_stats.csv",
            "stats_stats_history.csv", "locust.html", "stats.json", "locust.log",
            "thresholds.txt"} <= names, names
    assert sum(1 for p in files if p.name == "report.html") == 2
    key = KEY.encode()
    assert [p for p, data in files.items() if key in data] == []
    for out in (run.stdout, run.stderr, report.stdout, report.stderr, smoke.stdout,
                smoke.stderr):
        assert KEY not in out
