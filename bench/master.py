"""How far one master goes: the records/s one locust master running loadkit absorbs
(target ≥ 50,000 records/s on this machine), with its CPU and memory.

Run: ``python bench/master.py [--workers 2] [--start 20000] [--factor 1.25]
[--step-seconds 5] [--max-steps 12] [--max-lag 3] [--rounds 2] [--finish] [--json PATH]``.

One real master (loadkit's packaged locustfile imported by this file, ``--master --headless
--expect-workers N``, loopback) and N real locust workers (processes, connected over ZMQ),
each with one ``SyntheticUser``: instead of sending batches over HTTP it fabricates records
(a real record of a short local run, as :class:`loadkit.records.BatchRecord` fields, with its
own batch number and times) at the rate the driver asks and hands each to the worker's role
(``current_role().add(record)``, as loadkit's ``BatchUser`` does). The worker's role buffers
them and sends them as it always does (``loadkit_records``, up to ``ROWS_PER_MESSAGE`` rows
every ``SEND_EVERY`` s); the master's role takes them, names its run in them and writes them
to ``records.jsonl`` (flushed and fsynced every second). Nothing is contacted over HTTP
(``--host`` points at a closed loopback port; no embedded server is started).

The rate rises per step (``--start``, times ``--factor`` each step, ``--step-seconds`` each)
until the master falls behind, the workers cannot make the rate asked, ``--max-rate`` or
``--max-steps``. Per step the driver (this process) reads ``records.jsonl`` as it grows
(every 0.1 s) and the workers' counts of the records they made and of the rows they handed
to ZMQ, and prints:

- records/s asked, made by the workers, and written (from the step's first growth of the
  file to its last: the master flushes every second);
- the backlog (records sent, not yet in the file) and its growth over the step, in seconds
  of the step's rate; the lag (now − ``ended_at`` of the newest record in the file). Both
  are their least over the step's first and last 1.5 s: right after a flush, what is truly
  queued (a master that keeps up holds at most one worker's send more at one time than at
  another);
- the master's CPU (% of one core, psutil on its pid), its CPU per record written, its RSS,
  the share of the step it spent flushing records.jsonl (write and fsync, which block its
  event loop) and its longest flush (this file wraps the master's ``RecordWriter.flush`` to
  time it: one small file written per flush);
- the workers' CPU, this driver's, the machine's (% of one core, all cores summed) and the
  ``loadkit_records`` messages per second per worker.

A step *looks behind* (``behind?``) when that lag exceeds ``--max-lag`` seconds, the
backlog grew by more than half a second of the step's rate, or the master wrote less than
90 % of the records/s made. A flush stalled on the disk, or a worker's send just missed at
the step's end, can make a step look so; the same rate is therefore run once more, and the
two steps together decide: the master *falls behind* (``behind``, the search ends) when the
lag exceeds ``--max-lag`` or grew by more than a second over both; else the search goes on.
The workers are *short* when they made less than 90 % of the rate asked: then the
generators, not the master, are the limit. The figure is the records/s made in the fastest
step the master kept up with (it wrote every one of them, within the lag); the written
records/s of the step it fell behind in is its ceiling (saturated).

After the search the rate goes to 0 and the driver waits (bounded) until every record sent
is in the file. Then the master and workers are killed (``records.jsonl`` is crash-safe);
with ``--finish`` the master is stopped with SIGTERM instead and ends the run as usual
(Parquet, run.json): the time that takes and the master's peak RSS are printed, and run.json's
record count is checked against the records sent.

Rounds (``bench/_rounds.py``): ``--rounds`` searches (``--runs`` is the same option; default
2), one after the other, each with a master and workers of its own; there is no baseline to
alternate with and no warm-up round. The figure (records/s absorbed) is the median over the
searches, printed with each search's and, on the line under it, its spread. Cost at the
default settings on a 2-core machine: ~50 s per search (~7-8 steps of 5.25 s from 20,000
records/s up to where the master falls behind near 60,000, a suspect step repeated, ~4.5 s
of start-up and a few of drain; measured: 14 s for 2 steps of 2 s with ``--finish``, 4 s of
it the finish), ~2 min in all.

This file is also the locustfile the master and the workers run (the driver re-runs it under
``locust``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 50_000
"""Records/s one master should absorb on this machine (issue 13 §4)."""
TICK_S = 0.05
"""Seconds between a synthetic user's rounds of fabricated records."""
REPORT_S = 0.25
"""Seconds between a worker's reports of its counts (and its reads of the rate asked)."""
POLL_S = 0.1
"""Seconds between the driver's reads of records.jsonl and of the workers' counts."""
WINDOW_S = 1.5
"""The backlog and the lag are taken as their least over this many seconds at a step's
start and end: right after the master's flush (every second), what is truly queued."""
MIN_WRITTEN = 0.9
"""Written ÷ made records/s of a step below which the master may be behind (a master that
keeps up shows ±15 %: a flush holds one more or one less of each worker's sends)."""
MAX_GROWTH_S = 0.5
"""Backlog growth over a step, in seconds of its rate, beyond which the master may be behind
(a master that keeps up may hold one worker's send less or more at the step's end than at
its start: up to (N-1)/N s of the rate)."""
BEHIND_S = 1.0
"""Seconds the lag may grow over a suspect step and its repeat before the master is behind
(over two 5 s steps: it wrote 10 % less than the records made). The lag, a time, is not
thrown off by how many records a flush happened to hold, as the backlog is."""

if "locust" in sys.modules or os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    # --- the locustfile side ---------------------------------------------------------------
    import gevent
    from locust import User, events, task
    from locust.runners import MasterRunner, WorkerRunner

    from loadkit.locust.listeners import current_role
    from loadkit.locust.messages import MSG_RECORDS
    from loadkit.locustfiles.stream import *  # noqa: F403 - loadkit's listeners, flags, roles
    from loadkit.records import BatchRecord

    CONTROL = Path(os.environ.get("LOADKIT_BENCH_CONTROL", "."))
    WORKERS = int(os.environ.get("LOADKIT_BENCH_WORKERS", "1"))
    COUNTS = {"made": 0, "sent": 0, "messages": 0}

    # One record of a short local run (`locust -f locustfiles/stream.py -u 1 --items 100`):
    # a sealed 100-item batch; run_id, worker_id, user_id, seq and the times are set per row.
    REAL_RECORD = BatchRecord.blank(
        batch_id="batch_40d5b367b115b30591a5", create_ms=6.265632999202353,
        stream_ms=21.476923999216524, total_ms=28.225922998899478, outcome="sealed",
        sealed=True, sealed_attempt=1, attempts=1, create_attempts=1, status=200,
        retry_reasons="", run_count=100, task_count=1, payload_bytes=25600, lines_sent=100,
        bytes_sent=30190, items_accepted=100, items_deduplicated=0, expected_status=200,
        expected_accepted=100, expected_deduplicated=0, expected_sealed=True,
        send_bytes_per_s=1405694.7820414752, send_items_per_s=4656.160258501077,
        response_tail_ms=0.7027419997029938, tasks="loadkit-task:100",
        write_ms=0.5917870003031567, client_mode="loadkit").as_dict()

    FLUSHES: list[tuple[float, float]] = []
    """The master's flushes of records.jsonl (write and fsync, on its event loop): when it
    ended (epoch s) and how long it took."""

    def _timed_flush(flush):
        def timed(self) -> None:
            t0 = time.perf_counter()
            try:
                flush(self)
            finally:
                FLUSHES.append((time.time(), time.perf_counter() - t0))
                del FLUSHES[:-100]
                # reported here: a saturated master's loop never gets to a greenlet of ours
                path = CONTROL / "master.json"
                path.with_suffix(".tmp").write_text(json.dumps(FLUSHES))
                os.replace(path.with_suffix(".tmp"), path)
        return timed

    @events.init.add_listener
    def _count_sends(environment, runner=None, **_kw) -> None:
        """A worker counts the rows and messages it hands to ZMQ (the records sent); the
        master times its flushes."""
        if isinstance(runner, MasterRunner):
            from loadkit import records  # noqa: PLC0415

            records.RecordWriter.flush = _timed_flush(records.RecordWriter.flush)
        if not isinstance(runner, WorkerRunner):
            return
        send = runner.send_message

        def counted(msg_type, data=None, *args, **kwargs):
            result = send(msg_type, data, *args, **kwargs)
            if msg_type == MSG_RECORDS:
                COUNTS["sent"] += len(data)
                COUNTS["messages"] += 1
            return result

        runner.send_message = counted
        gevent.spawn(_report)

    def _report() -> None:
        """Every REPORT_S: this worker's counts, for the driver (atomically replaced)."""
        path = CONTROL / f"worker-{os.getpid()}.json"
        while True:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(COUNTS))
            os.replace(tmp, path)
            gevent.sleep(REPORT_S)

    def _rate_asked() -> float:
        """Records/s the driver asks of all workers together."""
        try:
            return float((CONTROL / "rate").read_text() or 0.0)
        except (OSError, ValueError):
            return 0.0

    class SyntheticUser(User):
        """Fabricates records at this worker's share of the rate asked and hands them to the
        worker's role, which buffers and sends them as it does a BatchUser's."""

        def on_start(self) -> None:
            self.role = current_role()
            self.role.schedule.ready.wait(timeout=10)  # the master's plan: batch numbers
            self.user_id = self.role.next_user_id()

        @task
        def fabricate(self) -> None:
            role = self.role
            template = dict(REAL_RECORD, run_id=role.run_id or "", worker_id=role.worker_id,
                            user_id=self.user_id)
            owed, last, rate, read_at = 0.0, time.monotonic(), 0.0, 0.0
            while True:
                gevent.sleep(TICK_S)
                now_m = time.monotonic()
                if now_m - read_at >= REPORT_S:
                    rate, read_at = _rate_asked() / WORKERS, now_m
                # at most one second owed: a worker that cannot keep up shows as sending less
                owed = min(owed + rate * (now_m - last), rate + 1.0)
                last = now_m
                n = int(owed)
                owed -= n
                now = time.time()
                for _ in range(n):
                    row = template.copy()
                    row["seq"] = role.next_seq()
                    row["started_at"] = now - 0.028
                    row["ended_at"] = now
                    role.add(row)
                COUNTS["made"] += n


# --- the driver ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FileTail:
    """Counts the records of a growing records.jsonl and reads the newest one's ended_at."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = None
        self.count = 0
        self.newest_end: float | None = None
        self._rest = b""

    def poll(self) -> None:
        import orjson  # noqa: PLC0415

        if self.fh is None:
            if not self.path.exists():
                return
            self.fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        data = self.fh.read()
        if not data:
            return
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        complete = data[:cut]
        self.count += complete.count(b"\n")
        if complete:
            last = complete[complete.rfind(b"\n", 0, len(complete) - 1) + 1:]
            self.newest_end = orjson.loads(last).get("ended_at") or self.newest_end

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


class Cluster:
    """One master and ``workers`` workers of this file, under ``locust``, on loopback."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.control = tmp / "control"
        self.control.mkdir()
        self.results = tmp / "results"
        self.set_rate(0.0)
        port = str(_free_port())
        from loadkit import wire  # noqa: PLC0415

        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TRIGGER_"))}
        env.update(LOADKIT_BENCH_LOCUSTFILE="1", LOADKIT_BENCH_CONTROL=str(self.control),
                   LOADKIT_BENCH_WORKERS=str(args.workers), PYTHONUNBUFFERED="1",
                   TRIGGER_SECRET_KEY=wire.DEFAULT_LOCAL_SECRET_KEY)
        locust = str(Path(sys.executable).with_name("locust"))
        bound = args.max_steps * args.step_seconds + 120  # it stops by itself, whatever happens
        common = dict(cwd=tmp, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.master_log = open(tmp / "master.log", "w+")  # noqa: SIM115 - closed in kill()
        self.master = subprocess.Popen(
            [locust, "-f", __file__, "SyntheticUser", "--master", "--headless",
             "--expect-workers", str(args.workers), "--master-bind-host", "127.0.0.1",
             "--master-bind-port", port, "-u", str(args.workers), "-r", str(args.workers),
             "-t", f"{bound:.0f}s", "--stop-timeout", "2", "--host", "http://127.0.0.1:9",
             "--results-dir", str(self.results), "--only-summary", "--loglevel", "WARNING"],
            stdout=self.master_log, stderr=subprocess.STDOUT, **common)
        self.workers = [subprocess.Popen(
            [locust, "-f", __file__, "SyntheticUser", "--worker", "--master-host", "127.0.0.1",
             "--master-port", port, "--loglevel", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **common)
            for _ in range(args.workers)]
        self.tail: FileTail | None = None

    def set_rate(self, rate: float) -> None:
        tmp = self.control / "rate.tmp"
        tmp.write_text(f"{rate}")
        os.replace(tmp, self.control / "rate")

    def counts(self) -> dict[str, int]:
        """The workers' counts (made, sent, messages), summed."""
        total = {"made": 0, "sent": 0, "messages": 0, "reporting": 0}
        for path in self.control.glob("worker-*.json"):
            with contextlib.suppress(OSError, ValueError):
                for key, value in json.loads(path.read_text()).items():
                    total[key] += value
                total["reporting"] += 1
        return total

    def flushes(self, since: float) -> list[float]:
        """How long the master's flushes since ``since`` (epoch s) took."""
        with contextlib.suppress(OSError, ValueError):
            return [d for at, d in json.loads((self.control / "master.json").read_text())
                    if at >= since]
        return []

    def wait_started(self, timeout: float = 90.0) -> None:
        """Until the run's records.jsonl exists, every worker reports and records at the
        first step's rate reach the file."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                sys.exit(f"the master ended at start-up:\n{self._master_output()}")
            files = list(self.results.glob("*/records.jsonl")) if self.results.exists() else []
            if files and self.counts()["reporting"] == self.args.workers:
                break
            time.sleep(0.2)
        else:
            sys.exit(f"the master and workers did not start within {timeout:g} s:\n"
                     f"{self._master_output()}")
        # warm-up: the users spawned and records flow into the file
        self.tail = FileTail(files[0])
        self.set_rate(self.args.start)
        while time.monotonic() < deadline:
            self.tail.poll()
            if self.tail.count:
                return
            time.sleep(0.2)
        sys.exit(f"the master and workers did not start within {timeout:g} s:\n"
                 f"{self._master_output()}")

    def _master_output(self) -> str:
        self.master_log.flush()
        self.master_log.seek(0)
        return self.master_log.read()[-3000:]

    def kill(self) -> None:
        for proc in [self.master, *self.workers]:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.tail is not None:
            self.tail.close()
        self.master_log.close()


def _cpu(procs: list) -> float:
    """CPU seconds (user + system) of psutil processes so far (0 for one gone)."""
    import psutil  # noqa: PLC0415

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def one_run(args: argparse.Namespace, run: int) -> dict:
    """One search; returns its figures."""
    import psutil  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="loadkit-bench-master-") as tmp:
        cluster = Cluster(args, Path(tmp))
        try:
            return _search(args, run, cluster, psutil)
        finally:
            cluster.kill()


def _search(args: argparse.Namespace, run: int, cluster: Cluster, psutil) -> dict:
    cluster.wait_started()
    tail = cluster.tail
    assert tail is not None
    master = psutil.Process(cluster.master.pid)
    workers = [psutil.Process(w.pid) for w in cluster.workers]
    psutil.cpu_percent()  # the machine's, from now on
    print(f"run {run}: step  asked/s   made/s  written/s  backlog  +(s)  lag s  master CPU  "
          f"µs/rec  RSS MB  flushing (max s)  workers CPU  driver  machine  msgs/s/worker  "
          f"verdict", flush=True)
    steps: list[dict] = []
    rate = float(args.start)
    max_rss = 0.0
    for step in range(1, args.max_steps + 1):
        cluster.set_rate(rate)
        t0, c0, wall0 = time.monotonic(), cluster.counts(), time.time()
        tail.poll()
        w0, m0, k0, d0 = tail.count, _cpu([master]), _cpu(workers), time.process_time()
        end = t0 + args.step_seconds
        flushes: list[tuple[float, int]] = []  # (when, records in the file) at each growth
        samples: list[tuple[float, int, float]] = []  # (when, backlog, lag)
        while time.monotonic() < end:
            time.sleep(POLL_S)
            before = tail.count
            tail.poll()
            now = time.monotonic()
            if tail.count != before:
                flushes.append((now, tail.count))
            lag = time.time() - tail.newest_end if tail.newest_end else float("inf")
            samples.append((now, cluster.counts()["sent"] - tail.count, lag))
            max_rss = max(max_rss, master.memory_info().rss)
            if cluster.master.poll() is not None:
                sys.exit(f"the master ended mid-run:\n{cluster._master_output()}")
        t1, c1 = time.monotonic(), cluster.counts()
        span = t1 - t0
        time.sleep(REPORT_S)  # the master's report of its last flushes
        flushed = cluster.flushes(wall0)
        made_rate = (c1["made"] - c0["made"]) / span
        if len(flushes) >= 3:  # from the step's first growth of the file to its last one
            written_rate = (flushes[-1][1] - flushes[0][1]) / (flushes[-1][0] - flushes[0][0])
        else:
            written_rate = (tail.count - w0) / span
        # floors over a window: right after the master's flush, what is truly queued
        first = [s for s in samples if s[0] <= t0 + WINDOW_S] or samples[:1]
        last = [s for s in samples if s[0] >= t1 - WINDOW_S] or samples[-1:]
        backlog, backlog_start = min(s[1] for s in last), min(s[1] for s in first)
        growth = backlog - backlog_start
        lag, lag_start = min(s[2] for s in last), min(s[2] for s in first)
        row: dict = {
            "verdict": "ok", "step": step, "asked": rate, "made": made_rate,
            "sent": (c1["sent"] - c0["sent"]) / span, "written": written_rate,
            "backlog": backlog, "backlog_start": backlog_start, "growth_s": growth / rate,
            "lag": lag, "lag_start": lag_start,
            "master_cpu": (_cpu([master]) - m0) / span * 100,
            "us_per_record": (_cpu([master]) - m0) / max(tail.count - w0, 1) * 1e6,
            "rss_mb": master.memory_info().rss / 1e6,
            "workers_cpu": (_cpu(workers) - k0) / span * 100,
            "driver_cpu": (time.process_time() - d0) / span * 100,
            "flush_share": sum(flushed) / span * 100,
            "max_flush_s": max(flushed, default=0.0),
            "machine_cpu": psutil.cpu_percent() * psutil.cpu_count(),
            "msgs_per_worker": (c1["messages"] - c0["messages"]) / span / args.workers,
        }
        suspect = steps[-1] if steps and steps[-1]["verdict"] == "behind?" else None
        if suspect is not None:
            # the same rate again decides, over both steps: a master whose lag exceeds
            # --max-lag, or grew by more than BEHIND_S in them, is behind; else the first
            # was a blip (a flush stalled on the disk, a worker's send just missed)
            lagged = lag - suspect["lag_start"]
            row["verdict"] = "behind" if lag > args.max_lag or lagged > BEHIND_S else "ok"
        elif lag > args.max_lag or growth > rate * MAX_GROWTH_S or \
                written_rate < MIN_WRITTEN * made_rate:
            row["verdict"] = "behind?"
        if row["verdict"] != "behind" and made_rate < 0.9 * rate:
            row["verdict"] = "workers short"  # the generators, not the master, are the limit
        steps.append(row)
        print(f"run {run}: {step:4d} {rate:8,.0f} {made_rate:8,.0f} {written_rate:10,.0f} "
              f"{backlog:8,d} {row['growth_s']:+5.1f} {lag:6.1f} {row['master_cpu']:9.0f} % "
              f"{row['us_per_record']:6.1f} "
              f"{row['rss_mb']:7.0f} {row['flush_share']:7.0f} % ({row['max_flush_s']:5.2f}) "
              f"{row['workers_cpu']:10.0f} % {row['driver_cpu']:5.0f} % "
              f"{row['machine_cpu']:5.0f} % "
              f"{row['msgs_per_worker']:11.1f}    {row['verdict']}", flush=True)
        if row["verdict"] in ("behind", "workers short"):
            break
        if row["verdict"] == "ok":
            if rate * args.factor > args.max_rate:
                break
            rate *= args.factor
    result = _drain(args, run, cluster, steps)
    result["max_rss_mb"] = max_rss / 1e6
    if args.finish:
        result.update(_finish(args, run, cluster, master))
    return result


def _drain(args: argparse.Namespace, run: int, cluster: Cluster, steps: list[dict]) -> dict:
    """Rate 0, then wait (bounded) until every record made is sent and written."""
    tail = cluster.tail
    assert tail is not None
    cluster.set_rate(0.0)
    time.sleep(2 * REPORT_S)  # the workers see the rate and report their last counts
    t0 = time.monotonic()
    deadline = t0 + args.drain_seconds
    counts = cluster.counts()
    while time.monotonic() < deadline:
        tail.poll()
        counts = cluster.counts()
        if tail.count >= counts["made"] and counts["sent"] >= counts["made"]:
            break
        time.sleep(REPORT_S)
    drained = time.monotonic() - t0
    print(f"run {run}: drained: {tail.count:,} of {counts['made']:,} records made are in "
          f"records.jsonl ({counts['sent']:,} sent) {drained:.1f} s after the last step",
          flush=True)
    kept = [s for s in steps if s["verdict"] == "ok"]
    behind = [s for s in steps if s["verdict"] == "behind"]
    best = max(kept, key=lambda s: s["made"]) if kept else None
    return {
        "steps": steps,
        # a step it kept up with: it wrote every record made, within the lag
        "absorbed": best["made"] if best else 0.0,
        "cpu_at_absorbed": best["master_cpu"] if best else None,
        "us_per_record": statistics.median(s["us_per_record"] for s in kept) if kept else None,
        "ceiling": behind[0]["written"] if behind else None,
        "limited_by": steps[-1]["verdict"] if steps[-1]["verdict"] != "ok"
        else "highest rate or step count reached",
        "made": counts["made"], "written": tail.count, "lost": counts["made"] - tail.count,
    }


def _finish(args: argparse.Namespace, run: int, cluster: Cluster, master) -> dict:
    """End the run as locust does on SIGTERM: last records, Parquet, run.json."""
    t0 = time.monotonic()
    peak = 0.0
    os.kill(cluster.master.pid, signal.SIGTERM)
    while cluster.master.poll() is None and time.monotonic() - t0 < args.finish_timeout:
        with contextlib.suppress(Exception):
            peak = max(peak, master.memory_info().rss)
        time.sleep(0.1)
    took = time.monotonic() - t0
    metas = list(cluster.results.glob("*/run.json"))
    records = json.loads(metas[0].read_text()).get("records") if metas else None
    code = cluster.master.poll()
    print(f"run {run}: finish (SIGTERM → Parquet, run.json): {took:.1f} s, exit code {code}, "
          f"master peak RSS {peak / 1e6:,.0f} MB, run.json records {records}", flush=True)
    return {"finish_s": took, "finish_rss_mb": peak / 1e6, "finish_records": records}


def main() -> None:
    import _rounds  # noqa: PLC0415 - the driver's only (this file is a locustfile too)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--start", type=float, default=20_000, help="records/s of step 1")
    parser.add_argument("--factor", type=float, default=1.25, help="rate × this each step")
    parser.add_argument("--max-rate", type=float, default=400_000)
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--max-lag", type=float, default=3.0,
                        help="seconds of lag at a step's end that count as falling behind")
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    _rounds.add_arguments(parser, default=2, aliases=("--runs",), per_round="~50 s",
                          warmup=False)
    parser.add_argument("--finish", action="store_true",
                        help="end each run with SIGTERM (Parquet, run.json) instead of a kill")
    parser.add_argument("--finish-timeout", type=float, default=300.0)
    args = parser.parse_args()

    from loadkit.locust.messages import ROWS_PER_MESSAGE, SEND_EVERY  # noqa: PLC0415

    print(f"one master, {args.workers} workers (processes, ZMQ on loopback), one synthetic "
          f"user each; {args.step_seconds:g} s steps from {args.start:,.0f} records/s × "
          f"{args.factor:g}; workers send up to {ROWS_PER_MESSAGE:,} rows every {SEND_EVERY:g} "
          f"s; behind = lag > {args.max_lag:g} s or lag +{BEHIND_S:g} s over a suspect step "
          f"and its repeat; {os.cpu_count()} cores", flush=True)
    round_no = iter(range(1, 10**6))
    got = _rounds.interleave({"search": lambda: one_run(args, next(round_no))}, args.rounds,
                             warmup=False)
    results = got["search"]
    print(got.timing_line())
    report = _rounds.Report("master")
    report.info.update(workers=args.workers, step_seconds=args.step_seconds)
    absorbed = [r["absorbed"] for r in results]
    fig = report.add("records/s one master absorbs", absorbed,
                     target=_rounds.at_least(TARGET, f"≥ {TARGET:,}"), fmt=",.0f")
    med = fig.median
    ceilings = [r["ceiling"] for r in results if r["ceiling"] is not None]
    verdict = "met" if med >= TARGET else "NOT met"
    limits = ", ".join(sorted({r["limited_by"] for r in results}))
    cpu = [r["cpu_at_absorbed"] for r in results if r["cpu_at_absorbed"] is not None]
    print(f"\nmaster absorbs {med:,.0f} records/s (median of {len(results)}; per run "
          f"{', '.join(f'{a:,.0f}' for a in sorted(absorbed))}; the search ended: {limits}); "
          f"target ≥ {TARGET:,}: {verdict}")
    print(fig.spread_line())
    print(f"ratio absorbed ÷ target: {med / TARGET:.2f}" + (
        f"; saturated master writes {statistics.median(ceilings):,.0f} records/s"
        if ceilings else "; the master never fell behind (a lower bound)"))
    per = [r["us_per_record"] for r in results if r["us_per_record"] is not None]
    per_record = statistics.median(per) if per else float("nan")
    print(f"master CPU at that rate: {statistics.median(cpu) if cpu else float('nan'):.0f} % "
          f"of one core; per record written {per_record:.1f} µs (≈ {1e6 / per_record:,.0f} "
          f"records/s at 100 % of one core); master peak RSS "
          f"{max(r['max_rss_mb'] for r in results):,.0f} MB; "
          f"records lost: {sum(r['lost'] for r in results):,} of "
          f"{sum(r['made'] for r in results):,}")
    if ceilings:
        report.add("records/s a saturated master writes", ceilings, fmt=",.0f")
    if per:
        report.add("master CPU µs per record written", per, fmt=".1f")
    report.info.update(limited_by=limits, lost=sum(r["lost"] for r in results),
                       made=sum(r["made"] for r in results))
    report.write(args.json)


if __name__ == "__main__" and not os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    main()
