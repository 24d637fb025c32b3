"""locust's web UI under loadkit: each test its own run, the loadkit tab in a real browser,
loopback by default, and no key in anything the UI serves."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

import loadkit

from .conftest import clean_env, free_port, locust_argv

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMALL = ("--items", "20", "--payload-bytes", "64")


class WebUI:
    """A locust process serving the web UI on a port of its own choosing (``--web-port 0``)."""

    def __init__(self, proc: subprocess.Popen[str], cwd: Path) -> None:
        self.proc, self.cwd = proc, cwd
        self.lines: list[str] = []
        self.url = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 60
        while not self.url:
            found = [m for line in list(self.lines)
                     if (m := re.search(r"loadkit: web UI at (http://\S+?)/ ", line))]
            if found:
                self.url = found[0].group(1).replace("0.0.0.0", "127.0.0.1")
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the web UI did not come up:\n" + "".join(self.lines)[-3000:])
            time.sleep(0.05)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stats(self) -> dict:
        return self.http.get("/loadkit/stats").json()

    def workers_ready(self, n: int, timeout: float = 60) -> None:
        """Wait until ``n`` workers are ready (locust takes a worker back --stop-timeout
        seconds after a stop)."""
        deadline = time.monotonic() + timeout
        while True:
            workers = self.http.get("/stats/requests").json().get("workers") or []
            if sum(w.get("state") == "ready" for w in workers) >= n:
                return
            assert time.monotonic() < deadline, f"{n} workers not ready: {workers}"
            time.sleep(0.1)

    def start(self, users: int = 2) -> None:
        answer = self.http.post("/swarm", data={"user_count": users, "spawn_rate": users})
        assert answer.json()["success"], answer.text
        self.wait(lambda s: s.get("state") == "running" and s["batches"] > 0, "batches")

    def stop(self) -> dict:
        assert self.http.post("/stop").json()["success"]
        return self.wait(lambda s: s.get("state") == "ended", "the run's end")

    def wait(self, done, what: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.stats()
            if done(snap):
                return snap
            time.sleep(0.1)
        pytest.fail(f"waited {timeout} s for {what}: {snap}\n{self.stderr[-3000:]}")

    def run_dirs(self) -> list[Path]:
        results = self.cwd / "results"
        return sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []


@contextlib.contextmanager
def web_ui(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
           workers: int = 0):
    """locust with its web UI (and ``workers`` worker processes) in ``tmp_path``; quit with
    SIGINT at the end, killed if it hangs."""
    common = dict(cwd=tmp_path, env=env or clean_env(), text=True, stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    extra: tuple[str, ...] = ()
    port = free_port()
    if workers:
        extra = ("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port))
    proc = subprocess.Popen(locust_argv("--web-port", "0", *SMALL, *extra, *args), **common)
    procs = [proc] + [subprocess.Popen(locust_argv(
        "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
        **(common | {"stderr": subprocess.DEVNULL})) for _ in range(workers)]
    ui = None
    try:
        ui = WebUI(proc, tmp_path)
        yield ui
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if ui is not None:
            ui.http.close()
            ui.reader.join(timeout=10)  # it ends at the pipe's end, then the pipe can close
        if proc.stderr is not None:
            proc.stderr.close()


def _assert_complete_run(run_dir: Path, worker: str | None = None) -> int:
    """A run directory written in full at its test's stop; its record count."""
    meta = json.loads((run_dir / "run.json").read_text())
    table = pq.read_table(run_dir / "records.parquet")
    assert meta["ended_at"] is not None
    assert meta["records"] == table.num_rows > 0
    assert set(table.column("run_id").to_pylist()) == {meta["run_id"]}
    # every batch the target created has its record (a batch killed at the stop before its
    # create was answered has one too, with no batch id)
    created = [b for b in table.column("batch_id").to_pylist() if b]
    assert meta["server_stats"]["batches_created"] == len(created)
    assert meta["server_stats"]["items_enqueued"] == sum(
        n or 0 for n in table.column("items_accepted").to_pylist())
    if worker is not None:
        assert worker not in set(table.column("worker_id").to_pylist())
    return table.num_rows


def _chromium(url: str, profile: Path) -> str:
    """The page's DOM after it has run its scripts for a few seconds."""
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=6000", "--dump-dom", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _tab_value(dom: str, figure: str) -> str:
    found = re.search(rf">{re.escape(figure)}</td><td[^>]*>(.*?)</td>", dom)
    assert found, f"no {figure!r} row in the loadkit tab:\n{dom[-3000:]}"
    return found.group(1)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: "
                    "apt-get install chromium; .ci/run installs it when the machine allows)")
def test_the_tab_moves_in_a_browser_and_each_test_is_its_own_run(tmp_path):
    """Start, Stop, Start, Stop: the tab's figures move in Chromium, its report link opens,
    and two complete run directories are written."""
    with web_ui(tmp_path, "--results-dir", "results", "--wait", "0.01") as ui:
        ui.start()
        seen = []
        for k in range(2):
            dom = _chromium(f"{ui.url}/?tab=loadkit", tmp_path / f"profile-{k}")
            seen.append(int(_tab_value(dom, "batches").split()[0].replace(",", "")))
        assert seen[1] > seen[0] > 0, seen
        assert "items/s now" in _tab_value(dom, "items/s")
        assert re.search(r"p95 [\d.,]+ ms", _tab_value(dom, "total latency"))
        first = ui.stop()
        assert {"run_id", "items_per_s", "mb_per_s", "batches", "sealed", "seal_rate",
                "stall_share", "violations", "retries", "rate_limited",
                "p95_total_ms"} <= set(first)
        # no batch is cut mid-send by the stop (a user between batches stops gracefully)
        assert first["sealed"] == first["batches"] > 0
        assert first["seal_rate"] == 1.0
        # a notebook reads the run while the UI stays up
        assert loadkit.load_run(ui.run_dirs()[0]).summary()["batches"] == first["batches"]
        assert len(ui.run_dirs()) == 1
        assert (ui.run_dirs()[0] / "records.parquet").exists()
        dom = _chromium(f"{ui.url}/?tab=loadkit", tmp_path / "profile-2")
        link = re.search(r'<a href="([^"]+)"[^>]*class="loadkit-report"', dom)
        assert link, dom[-3000:]
        assert link.group(1) == first["report_url"]
        page = ui.http.get(link.group(1))
        assert page.status_code == 200
        assert 'id="verdict"' in page.text
        assert first["run_id"] in page.text
        ui.start()
        second = ui.stop()
    assert second["run_id"] != first["run_id"]
    dirs = ui.run_dirs()
    assert [d.name for d in dirs] == sorted([first["run_id"], second["run_id"]])
    counts = [_assert_complete_run(d) for d in dirs]
    assert counts == [first["batches"], second["batches"]] or \
        counts == [second["batches"], first["batches"]]


def test_master_and_worker_write_one_run_per_test(tmp_path):
    """With a master and a worker, each web-UI test is a complete run of its own."""
    with web_ui(tmp_path, "--results-dir", "results", "--wait", "0.01", "--stop-timeout", "1",
                workers=1) as ui:
        runs = []
        for _ in range(2):
            ui.workers_ready(1)
            ui.start()
            time.sleep(1.0)
            runs.append(ui.stop())
            # the run's files are there while the UI stays up
            assert (ui.cwd / "results" / runs[-1]["run_id"] / "records.parquet").exists()
    dirs = ui.run_dirs()
    assert [d.name for d in dirs] == sorted(r["run_id"] for r in runs)
    for d, run in zip(dirs, sorted(runs, key=lambda r: r["run_id"]), strict=True):
        assert _assert_complete_run(d, worker="local") == run["batches"]


def test_the_ui_listens_on_loopback_unless_told_otherwise(tmp_path):
    """No --web-host: only 127.0.0.1 and no warning; --web-host 0.0.0.0: one warning line."""
    with web_ui(tmp_path, "--results-dir", "results") as ui:
        port = int(ui.url.rsplit(":", 1)[1])
        listening = [c.laddr.ip for c in psutil.Process(ui.proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert listening == ["127.0.0.1"]
        assert "warning" not in ui.stderr
    with web_ui(tmp_path, "--results-dir", "results", "--web-host", "0.0.0.0") as ui:
        time.sleep(0.5)
        warnings = [line for line in ui.lines if "loadkit: warning: the web UI" in line]
        assert len(warnings) == 1
        assert "--web-login" in warnings[0]
        assert "0.0.0.0" in warnings[0]


def test_a_planted_key_never_appears_in_what_the_ui_serves(tmp_path):
    """The key, echoed into the run's folder name, is redacted in the tab, the JSON, the runs
    page, the report and locust's own pages and logs."""
    key = "tr_dev_" + secrets.token_hex(12)
    env = clean_env(TRIGGER_SECRET_KEY=key)
    with web_ui(tmp_path, "--results-dir", f"results/{key}", env=env) as ui:
        ui.start()
        time.sleep(0.5)
        pages = [ui.http.get("/loadkit/stats").text, ui.http.get("/stats/requests").text]
        snap = ui.stop()
        pages += [ui.http.get(path).text for path in (
            "/loadkit/stats", "/stats/requests", "/loadkit/runs", snap["report_url"], "/",
            "/logs", "/exceptions", "/stats/requests/csv", "/stats/report")]
    assert all(key not in page for page in pages)
    assert "<redacted>" in pages[0]
    assert "<redacted>" in pages[1]
    assert snap["run_dir"].endswith(snap["run_id"])


def test_a_page_elsewhere_cannot_start_a_test_or_move_the_target(tmp_path):
    """A start from another origin, one pointing at another target, or a request to another
    host name is refused (403); the UI's own start works, and nothing is readable cross-origin."""
    with web_ui(tmp_path, "--results-dir", "results") as ui:
        form = {"user_count": 1, "spawn_rate": 1}
        evil = ui.http.post("/swarm", data=form, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        moved = ui.http.post("/swarm", data=form | {"host": "http://127.0.0.1:9"})
        assert moved.status_code == 403
        assert "the target of this session is" in moved.text
        rebound = ui.http.get("/loadkit/stats", headers={"Host": "evil.example:8089"})
        assert rebound.status_code == 403
        read = ui.http.get("/loadkit/stats", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in read.headers
        assert ui.stats()["state"] == "idle"
        assert not ui.run_dirs()
        own = ui.http.post("/swarm", data=form, headers={"Origin": ui.url})
        assert own.json()["success"]
        ui.wait(lambda s: s.get("state") == "running", "the UI's own start")
        ui.stop()


def test_a_run_folder_that_cannot_be_made_stops_that_test_and_says_why(tmp_path):
    """--run-id given: the second test's folder already exists, so that test stops, the tab
    and /loadkit/stats say why, the first run is untouched and the third test runs."""
    (tmp_path / "results" / "given-2").mkdir(parents=True)
    with web_ui(tmp_path, "--results-dir", "results", "--run-id", "given") as ui:
        ui.start()
        first = ui.stop()
        assert first["run_id"] == "given"
        assert ui.http.post("/swarm", data={"user_count": 1, "spawn_rate": 1}).json()
        error = ui.wait(lambda s: s.get("state") == "error", "the failed start")
        assert "given-2 already exists" in error["message"]
        rows = ui.http.get("/stats/requests").json()["extended_stats"][0]["data"]
        assert rows[0]["figure"] == "error"
        ui.wait(lambda s: ui.http.get("/stats/requests").json()["state"] == "stopped",
                "the failed test's stop")
        ui.start()
        third = ui.stop()
    assert third["run_id"] == "given-3"
    meta = json.loads((tmp_path / "results" / "given" / "run.json").read_text())
    assert meta["records"] == first["batches"]
    assert not list((tmp_path / "results" / "given-2").iterdir())


def test_quitting_during_a_test_keeps_every_record(tmp_path):
    """SIGINT while a test runs: its users stop first, then the run closes with every batch
    the server created."""
    with web_ui(tmp_path, "--results-dir", "results", "--server-create-delay", "0.3") as ui:
        ui.start(users=4)
        time.sleep(1.0)
    (run_dir,) = ui.run_dirs()
    _assert_complete_run(run_dir)


def test_a_capacity_search_stopped_in_the_ui_ends_with_its_test(tmp_path):
    """Stop during a capacity search: its answer says it was stopped and the next test's run
    holds none of its steps."""
    with web_ui(tmp_path, "--results-dir", "results", "--capacity", "true", "--step-seconds",
                "1", "--capacity-max-seconds", "30", "--capacity-start", "2000") as ui:
        ui.start()
        time.sleep(2.5)
        first = ui.stop()
        ui.start()
        time.sleep(1.5)
        second = ui.stop()
        time.sleep(1.5)  # a search left running would append steps to the second run now
    one = json.loads((tmp_path / "results" / first["run_id"] / "capacity.json").read_text())
    assert one["note"] == "the run stopped before the search finished"
    steps = (tmp_path / "results" / second["run_id"] / "capacity_steps.jsonl")
    numbers = [json.loads(line)["number"] for line in steps.read_text().splitlines()] \
        if steps.exists() else []
    assert numbers == sorted(numbers)
    assert len(numbers) <= 2
