"""Fault campaign: real locust runs through injected faults, a killed server and a killed worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest

from loadkit.records import RECORDS_PARQUET, read_jsonl, read_records, read_run_meta
from tests.campaign.conftest import campaign, clean_env
from tests.locust.conftest import master_and_workers

pytestmark = pytest.mark.slow

KEY = "tr_dev_Campaign_Key_5e1b77d0"
OUTAGE_S = 2.0
"""How long the killed server stays down before it is started again on its port."""


def batch_requests(stats_json) -> int:
    """The number of "batch" requests in locust's final statistics (``--json-file``)."""
    with open(stats_json) as fh:
        rows = {(r["method"], r["name"]): r for r in json.load(fh)}
    return int(rows[("BATCH", "batch")]["num_requests"])


def test_campaign_drops_503s_and_rate_limit_every_batch_sealed_once(run_locust, tmp_path):
    """12 s through 5 % drops, 5 % 503s and 1200:100/10s: records equal the server's truth."""
    run = run_locust(*campaign.locust_args(12, 4), "--json-file", "stats", timeout=120)
    assert run.returncode == 0, run.output[-3000:]
    fig = campaign.figures(run.run_dir)
    assert campaign.problems(fig) == [], json.dumps(fig, indent=2)
    assert fig["records"] == batch_requests(tmp_path / "stats.json")
    assert fig["records"] > 100
    assert fig["server"]["responses_by_status"].get("500") is None  # the knob made them 503


def test_timed_stop_lets_batches_in_flight_finish(run_locust):
    """Big batches streaming when -t runs out still become records: counts equal the server's."""
    run = run_locust("--headless", "-u", "4", "-r", "4", "-t", "3s", "--items", "3000",
                     "--max-items", "3000", "--payload-bytes", "400", "--server-enqueue-delay",
                     "0.002", "--server-ingest-concurrency", "50", timeout=90)
    assert run.returncode == 0, run.output[-3000:]
    rows = read_records(run.run_dir).to_pylist()
    server = read_run_meta(run.run_dir)["server_stats"]
    assert server["batches_created"] == len(rows) == sum(r["sealed"] for r in rows)
    assert server["batches_sealed"] == len(rows)
    assert server["items_enqueued"] == sum(r["run_count"] for r in rows)
    assert server["client_disconnects"] == 0
    assert read_run_meta(run.run_dir)["locust"]["stop_timeout"] == 30.0


def test_batches_past_the_stop_timeout_are_recorded_as_interrupted(run_locust, tmp_path):
    """With --stop-timeout 1 and 3 s batches, killed batches become 'interrupted' records."""
    run = run_locust("--headless", "-u", "3", "-r", "3", "-t", "4s", "--items", "200",
                     "--server-enqueue-delay", "0.15", "--stop-timeout", "1",
                     "--json-file", "stats", timeout=60)
    rows = read_records(run.run_dir).to_pylist()
    interrupted = [r for r in rows if r["error_kind"] == "interrupted"]
    assert 1 <= len(interrupted) <= 3, run.output[-3000:]
    for r in interrupted:
        assert r["outcome"] == "failed"
        assert r["batch_id"] is None
        assert r["run_count"] == 200
        assert "raise --stop-timeout" in r["error"]
    assert len(rows) == batch_requests(tmp_path / "stats.json")
    server = read_run_meta(run.run_dir)["server_stats"]
    with_id = sum(r["batch_id"] is not None for r in rows)
    assert with_id <= server["batches_created"] <= with_id + len(interrupted)


def test_server_killed_and_restarted_mid_run(run_locust, external_server, tmp_path):
    """Connect errors are recorded while the server is down; batches seal again after restart."""
    server = external_server(KEY)
    times: dict[str, float] = {}

    def outage() -> None:
        # the kill waits for the run to be under way (batches sealed), however slowly locust
        # starts; the outage itself lasts OUTAGE_S: its length is the scenario, not a wait
        deadline = time.monotonic() + 60
        while server.stats()["batches_sealed"] < 10:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        times["killed"] = time.time()
        server.kill()
        time.sleep(OUTAGE_S)
        server.start()
        times["restarted"] = time.time()

    thread = threading.Thread(target=outage)
    thread.start()
    run = run_locust("--headless", "-u", "3", "-r", "3", "-t", "12s", "--host", server.url,
                     "--items", "20", "--payload-bytes", "64", "--retry-attempts", "8",
                     "--retry-base-delay", "0.2", "--retry-max-delay", "1",
                     "--retry-create-base-delay", "0.3", "--retry-create-attempts", "15",
                     env=clean_env(TRIGGER_SECRET_KEY=KEY), timeout=120)
    thread.join()
    assert "restarted" in times, f"no 10 batches sealed within 60 s:\n{run.output[-3000:]}"
    assert "Traceback" not in run.output
    assert run.returncode in (0, 1), run.output[-3000:]  # 1: locust counts the failures
    run_dir = run.run_dir
    assert (run_dir / RECORDS_PARQUET).exists()
    meta = read_run_meta(run_dir)
    assert meta["ended_at"] is not None
    rows = read_records(run_dir).to_pylist()
    killed, restarted = times["killed"], times["restarted"]

    def connect_trouble(r) -> bool:
        reasons = set((r["retry_reasons"] or "").split(","))
        return bool(reasons & {"connect", "dropped", "create:connect", "create:dropped"}) or \
            r["error_kind"] == "connect"

    hit = [r for r in rows if connect_trouble(r)]
    assert hit, Counter(r["retry_reasons"] for r in rows)
    assert all(r["started_at"] <= restarted + 1 and r["ended_at"] >= killed for r in hit)
    assert any(r["started_at"] < killed and r["sealed"] for r in rows)
    after = [r for r in rows if r["started_at"] > restarted + 0.5]
    assert sum(r["sealed"] for r in after) >= 5, Counter(r["outcome"] for r in after)
    # batches created before the kill are gone from the restarted (in-memory) server: their
    # retries are answered 422 and recorded as failed with that status, not lost
    for r in rows:
        assert r["outcome"] in ("sealed", "failed", "not_sealed")
        if r["outcome"] != "sealed":
            assert r["error_kind"] or r["retry_reasons"], r
    # the restarted server's truth matches what was recorded after the restart
    stats = server.stats()
    sealed_after = sum(r["sealed"] for r in rows if r["started_at"] > restarted)
    assert sealed_after <= stats["batches_sealed"]


def test_worker_killed_mid_run_master_records_stay_complete(tmp_path):
    """SIGKILL of one of two workers: the master ends normally with readable, whole records."""
    with master_and_workers(tmp_path, "-u", "4", "-r", "4", "-t", "12s", "--items", "20",
                            "--payload-bytes", "64") as procs:
        master, *workers = procs
        deadline = time.monotonic() + 30
        jsonl = None
        while time.monotonic() < deadline:  # both workers' records have reached the master
            found = list((tmp_path / "results").glob("*/records.jsonl"))
            if found and len({r["worker_id"] for r in read_jsonl(found[0])}) == 2:
                jsonl = found[0]
                break
            time.sleep(0.1)
        assert jsonl is not None, "no records of both workers within 30 s"
        os.killpg(workers[0].pid, signal.SIGKILL)
        killed_at = time.time()
        outs = [p.communicate(timeout=90) for p in procs]
    assert master.returncode == 0, outs[0][1][-3000:]
    assert workers[1].returncode == 0, outs[2][1][-2000:]
    run_dir = jsonl.parent
    assert (run_dir / RECORDS_PARQUET).exists()
    meta = read_run_meta(run_dir)
    assert meta["ended_at"] is not None
    assert meta["exit_code"] is None
    rows = read_records(run_dir).to_pylist()
    assert len(rows) == meta["records"]
    by_worker = Counter(r["worker_id"] for r in rows)
    assert len(by_worker) == 2, by_worker
    assert all(n > 0 for n in by_worker.values())
    assert {r["outcome"] for r in rows} == {"sealed"}
    assert len({r["seq"] for r in rows}) == len(rows)
    assert len({r["batch_id"] for r in rows}) == len(rows)
    # the survivor kept going after the kill; the dead worker's last reported batch came before
    dead = min(by_worker, key=lambda w: max(r["ended_at"] for r in rows if r["worker_id"] == w))
    assert max(r["ended_at"] for r in rows if r["worker_id"] == dead) <= killed_at
    assert max(r["ended_at"] for r in rows) > killed_at + 3
    # the server created more batches than were recorded only by what the dead worker had in
    # flight or not yet reported: workers send records every second, so at most ~2 s of its rate
    dead_rows = [r for r in rows if r["worker_id"] == dead]
    dead_span = max(r["ended_at"] for r in dead_rows) - min(r["started_at"] for r in dead_rows)
    unreported = len(dead_rows) / max(dead_span, 0.5) * 2 + 4
    server = meta["server_stats"]
    assert len(rows) <= server["batches_created"] <= len(rows) + unreported
    assert server["batches_sealed"] >= len(rows)
