"""Tests of the reference server as a subprocess: its log, its stdout pipe and its parent watch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from loadkit import wire
from loadkit.server import ReferenceServer

from .conftest import Api, lines, wait_for

SECRET = "tr_dev_access_log_secret_4711"
WRONG = "tr_dev_wrong_key_0815"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_access_log_has_one_line_per_request_and_no_key():
    """With access_log=True every request leaves one line in the server's log, without a key."""
    with ReferenceServer(access_log=True, secret_keys=(SECRET,)) as s, Api(s.url, SECRET) as api:
        bid = api.new_batch(2)
        assert api.stream(bid, lines([0, 1])).json()["sealed"] is True
        with Api(s.url, WRONG) as wrong:
            assert wrong.create(1).status_code == 401
        deadline = time.monotonic() + 5
        while s.log_text().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = s.log_text()
    assert f'"POST {wire.CREATE_PATH} HTTP/1.1" 202' in log
    assert f'"POST {wire.stream_path(bid)} HTTP/1.1" 200' in log
    assert f'"POST {wire.CREATE_PATH} HTTP/1.1" 401' in log
    assert SECRET not in log
    assert WRONG not in log


def test_without_access_log_the_log_stays_empty(tmp_path):
    """By default requests leave no line in the server's log, read once the server has exited."""
    log_path = tmp_path / "server.log"
    with ReferenceServer(log_path=log_path) as s, Api(s.url) as api:
        api.new_batch(1)
        pid = s.pid
    assert pid is not None
    assert _gone(pid)  # stopped: everything it would ever write is in the file
    assert log_path.read_text() == ""


def test_server_keeps_answering_after_megabytes_of_access_log(tmp_path):
    """Megabytes of access lines (far more than a pipe holds) never block the server."""
    log_path = tmp_path / "server.log"
    with ReferenceServer(access_log=True, log_path=log_path) as s, Api(s.url) as api:
        pad = "x" * 4000
        for _ in range(400):  # ~1.6 MB of access lines
            r = api.client.get(wire.STATS_PATH, params={"pad": pad}, timeout=5)
            assert r.status_code == 200
        t0 = time.perf_counter()
        assert api.create(1).status_code == 202
        assert time.perf_counter() - t0 < 2
    text = log_path.read_text()
    assert text.count(f"GET {wire.STATS_PATH}?pad=") == 400
    assert len(text) > 1_500_000


def test_serve_access_log_goes_to_stderr_and_stdout_holds_only_the_url_line():
    """`loadkit serve --access-log` writes access lines on stderr; stdout has the URL line only."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "serve", "--access-log", "--secret-key", SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    access = f'"POST {wire.CREATE_PATH} HTTP/1.1" 202'
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        with Api(url, SECRET) as api:
            api.new_batch(1)
        wait_for(lambda: any(access in line for line in list(err_lines)),
                 "the access line of the create on stderr")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        reader.join(timeout=15)
        out = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    err = "".join(err_lines)
    assert proc.returncode == 0
    assert out == ""
    assert access in err
    assert SECRET not in err


PARENT = """
import time
from loadkit.server import ReferenceServer
server = ReferenceServer().start()
print(server.pid, server.url, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_server_exits_when_its_parent_dies(sig):
    """A process-mode server whose parent is killed (even by SIGKILL) exits within seconds."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        pid_text, url = parent.stdout.readline().split()
        pid = int(pid_text)
        assert httpx.get(url + wire.STATS_PATH, timeout=5).status_code == 200
        parent.send_signal(sig)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 6
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(pid), "the server outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)
