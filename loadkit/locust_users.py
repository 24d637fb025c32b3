"""The locust adapter: the ONLY module of loadkit that imports locust.

``locustfiles/stream.py`` imports :class:`BatchUser` from here; importing this module
registers loadkit's flags and listeners with locust's events (nothing else happens at import).

Flags
    Every row of :data:`loadkit.options.OPTIONS` becomes a flag (``payload_bytes`` →
    ``--payload-bytes``) through ``events.init_command_line_parser``, so each works on the
    command line and in the web UI and can be set in ``locust.conf``, ``[tool.locust]`` of
    ``pyproject.toml`` or as ``LOCUST_PAYLOAD_BYTES``. (``locust --help`` prints before it
    loads the locustfile, so it cannot list them: ``loadkit options`` does.) They are parsed
    once, by :func:`loadkit.options.parse_options`; a bad value stops locust at start-up
    with one line and exit code 2.

Target
    ``--host`` (or ``TRIGGER_API_URL``) with the key from ``TRIGGER_SECRET_KEY``. With no
    host, the master (or the local runner) starts the reference server on a free loopback
    port in its own process, workers get its URL with locust's spawn message, and it is
    stopped at the end; its settings go to ``run.json``.

Records
    The master (or local runner) owns ``<results-dir>/<run-id>/``: ``run.json``,
    ``records.jsonl`` (flushed at least every second) and ``records.parquet`` at the end.
    Workers send their records to the master in batches (custom message ``loadkit_records``)
    at least every second and when they stop or quit; at the end the master asks every
    worker for its last records (``loadkit_final``) before writing Parquet. Every record
    names its worker (``local`` or the worker's locust client id). With
    ``--keep-chunk-timings true`` every body chunk written also gets a row in
    ``chunks.jsonl`` (:data:`loadkit.records.CHUNK_FIELDS`), written and sent the same way
    (``loadkit_chunks``).

Models
    Closed (default): each user sends batches back to back, waiting ``--wait`` between
    them. Open (``--arrival-rate R``): batch starts follow a fixed timetable of R per second
    across the run; worker i of W takes starts i, i+W, i+2W …; a free user takes the next
    start, waits for its time, and sends; a start more than ``--drop-after`` seconds late
    is recorded with outcome ``dropped`` instead of being sent late.

Locust statistics
    Each batch fires request events of type ``BATCH``: ``create``, ``stream`` and ``batch``
    (the whole batch), plus ``batch (from intended start)`` and ``dropped`` in the open
    model. Failures carry the cause: ``HTTP 503``, ``not sealed after 5 attempts``,
    ``contract violation: accepted_mismatch``, ``connect error`` …

Stopping
    Batches in flight when the run stops (``-t`` reached, Ctrl-C, SIGTERM) finish first, so
    that the records match what the target saw: without ``--stop-timeout`` locust would kill
    them mid-send (a batch the server created or sealed but no record names). loadkit
    therefore sets locust's stop timeout to :data:`DEFAULT_STOP_TIMEOUT` seconds when none is
    given (``--stop-timeout N`` sets another bound). A batch still running at that bound is
    killed and recorded as ``failed`` with ``error_kind`` ``interrupted``: whether the target
    created or sealed it is unknown.

Exit codes
    0 ok; 1 locust's own (requests failed, no thresholds given); 2 bad option or results
    directory at start-up, or records that could not be written during the run (disk full:
    the run stops at once with the reason); 3 a threshold failed (:data:`EXIT_THRESHOLDS_FAILED`);
    4 the run stopped itself because the target rejected the key on every batch
    (:data:`EXIT_ABORTED`). When thresholds are given they decide between 0 and 3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
import gevent.event
from locust import User, events, task
from locust import __version__ as locust_version
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadkit import __version__ as loadkit_version
from loadkit import records as rec
from loadkit import wire
from loadkit.errors import ConfigError, RecordsError, ServerError, ThresholdError
from loadkit.options import OPTIONS, RunOptions, add_flags, new_run_id, parse_options
from loadkit.thresholds import EXIT_THRESHOLDS_FAILED, evaluate, format_table

__all__ = ["DEFAULT_STOP_TIMEOUT", "EXIT_ABORTED", "EXIT_CONFIG", "EXIT_THRESHOLDS_FAILED",
           "BatchUser"]

EXIT_CONFIG = 2
EXIT_ABORTED = 4
REQUEST_TYPE = "BATCH"
AUTH_STREAK = 3
"""Consecutive 401 batches (with none accepted before) after which the run stops itself."""
DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds batches in flight get to finish when the run stops, unless --stop-timeout is given."""

MSG_PLAN = "loadkit_plan"
MSG_RECORDS = "loadkit_records"
MSG_FINAL = "loadkit_final"
MSG_FINAL_DONE = "loadkit_final_done"
MSG_ABORT = "loadkit_abort"
MSG_CHUNKS = "loadkit_chunks"

log = logging.getLogger("loadkit")


class BatchFailure(Exception):
    """The cause of a failed create, stream or batch, as locust's failure statistics show it."""


# --- per-process state -------------------------------------------------------------------


class _Run:
    """Everything one locust process knows about the run (one instance per process)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.environment: Any = None
        self.role = "local"
        self.options: RunOptions | None = None
        self.run_id: str | None = None
        self.run_dir: Any = None
        self.meta: dict[str, Any] = {}
        self.writer: rec.RecordWriter | None = None
        self.server: Any = None
        self.target: str | None = None
        self.secret_key: str | None = None
        self.worker_id = "local"
        self.plan: dict[str, Any] | None = None
        self.plan_ready = gevent.event.Event()
        self.buffer: list[dict[str, Any]] = []
        self.chunk_buffer: list[dict[str, Any]] = []
        self.chunk_writer: rec.RecordWriter | None = None
        self.counter = 0
        self.user_counter = 0
        self.slot = 0
        self.auth_streak = 0
        self.accepted_any = False
        self.aborted: str | None = None
        self.write_error: str | None = None
        self.final_done: set[str] = set()
        self.finished = False
        self.sender: Any = None

    # -- numbering ------------------------------------------------------------------------

    def next_user_id(self) -> int:
        self.user_counter += 1
        return self.user_counter - 1

    def next_seq(self) -> int:
        """Closed model: this process's next batch number, disjoint from other workers'."""
        plan = self.plan or {"index": 0, "count": 1}
        seq = self.counter * plan["count"] + plan["index"]
        self.counter += 1
        return seq

    def next_slot(self) -> tuple[int, float]:
        """Open model: the next start of this process's share of the timetable."""
        assert self.plan is not None
        assert self.options is not None
        rate = self.options.run.arrival_rate
        k = self.slot
        self.slot += 1
        seq = k * self.plan["count"] + self.plan["index"]
        return seq, self.plan["t0"] + seq / rate

    # -- records --------------------------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        if self.role == "worker":
            self.buffer.append(record)
        elif self.writer is not None and self.write_error is None:
            try:
                self.writer.write(record)
            except RecordsError as exc:
                _write_failed(exc)

    def send_buffer(self) -> None:
        """Worker: send buffered records to the master (one message per ≤ 2,000 records)."""
        runner = self.environment.runner if self.environment else None
        while self.buffer and runner is not None:
            rows, self.buffer = self.buffer[:2000], self.buffer[2000:]
            try:
                runner.send_message(MSG_RECORDS, rows)
            except Exception:
                self.buffer = rows + self.buffer
                log.warning("loadkit: could not send %d records to the master yet", len(rows))
                return
        while self.chunk_buffer and runner is not None:
            rows, self.chunk_buffer = self.chunk_buffer[:2000], self.chunk_buffer[2000:]
            try:
                runner.send_message(MSG_CHUNKS, rows)
            except Exception:
                self.chunk_buffer = rows + self.chunk_buffer
                return

    def add_chunks(self, rows: list[dict[str, Any]]) -> None:
        """Per-chunk timing rows: appended to chunks.jsonl, or buffered for the master."""
        if self.role == "worker":
            self.chunk_buffer.extend(rows)
        elif self.chunk_writer is not None and rows:
            try:
                self.chunk_writer.write_many(rows)
            except RecordsError as exc:
                log.error("loadkit: %s; no more chunk timings are written", exc)
                self.chunk_writer = None


_run = _Run()


def _fatal(message: str, code: int = EXIT_CONFIG) -> None:
    """Stop locust at start-up with one clear line (no traceback)."""
    sys.stderr.write(f"loadkit: error: {message}\n")
    sys.stderr.flush()
    if _run.server is not None:
        _run.server.stop()
    raise SystemExit(code)


# --- flags -------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_flags(parser: Any, **_kw: Any) -> None:
    add_flags(parser, OPTIONS)


def _given(environment: Any) -> dict[str, Any]:
    parsed = environment.parsed_options
    return {o.name: getattr(parsed, o.name, None) for o in OPTIONS} if parsed else {}


# --- start-up ----------------------------------------------------------------------------


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _run.reset()
    _run.environment = environment
    if isinstance(runner, WorkerRunner):
        _run.role = "worker"
    elif isinstance(runner, MasterRunner):
        _run.role = "master"
    else:
        _run.role = "local"
    try:
        _run.options = parse_options(**_given(environment))
    except (ConfigError, ThresholdError) as exc:
        _fatal(str(exc))
    _run.secret_key = os.environ.get("TRIGGER_SECRET_KEY") or None

    # Listeners registered here (after the runner's own) fire before the runner's own
    # quitting listener, which quits the workers / tells the master this worker quit.
    environment.events.quitting.add_listener(_on_quitting)
    if runner is None:
        return
    if _run.role == "worker":
        _run.worker_id = runner.client_id
        runner.register_message(MSG_PLAN, _on_plan)
        runner.register_message(MSG_FINAL, _on_final)
        _run.sender = gevent.spawn(_sender_loop)
        return

    runner.register_message(MSG_RECORDS, _on_records)
    runner.register_message(MSG_CHUNKS, _on_chunks)
    runner.register_message(MSG_FINAL_DONE, _on_final_done)
    runner.register_message(MSG_ABORT, _on_abort)
    _start_master(environment)


def _start_master(environment: Any) -> None:
    opts = _run.options
    assert opts is not None
    host = environment.host or os.environ.get("TRIGGER_API_URL") or None
    if host and not _run.secret_key:
        _fatal("a target is given (--host / TRIGGER_API_URL) but TRIGGER_SECRET_KEY is not set; "
               "export the secret key of the environment to load-test")
    run_id = opts.run.run_id or new_run_id()
    try:
        _run.run_dir = rec.create_run_dir(opts.run.results_dir, run_id)
    except RecordsError as exc:
        _fatal(str(exc))
    _run.run_id = run_id
    server_settings = None
    if not host:
        key = _run.secret_key or wire.DEFAULT_LOCAL_SECRET_KEY
        _run.secret_key = key
        try:
            from loadkit.server import ReferenceServer  # noqa: PLC0415

            _run.server = ReferenceServer(opts.server_config(key), mode="process").start()
        except (ConfigError, ServerError) as exc:
            _fatal(f"cannot start the embedded reference server: {exc}")
        host = _run.server.url
        server_settings = _run.server.config.redacted()
        log.info("loadkit: no --host given: reference server started at %s", host)
    environment.host = host
    _run.target = host
    if not environment.stop_timeout:
        environment.stop_timeout = DEFAULT_STOP_TIMEOUT
    parsed = environment.parsed_options
    _run.meta = {
        "run_id": run_id,
        "started_at": time.time(),
        "ended_at": None,
        "loadkit_version": loadkit_version,
        "locust_version": locust_version,
        "python_version": sys.version.split()[0],
        "target": _redact_url(host),
        "embedded_server": server_settings,
        "model": "open" if opts.run.open_model else "closed",
        "options": opts.as_dict(),
        "locust": {
            name: getattr(parsed, name, None)
            for name in ("num_users", "spawn_rate", "run_time", "headless", "processes",
                         "expect_workers", "master")
        } | {"stop_timeout": environment.stop_timeout} if parsed else {},
        "role": _run.role,
    }
    try:
        rec.write_run_meta(_run.run_dir, _run.meta)
        _run.writer = rec.RecordWriter(_run.run_dir / rec.RECORDS_JSONL)
        if opts.client.keep_chunk_timings:
            _run.chunk_writer = rec.RecordWriter(_run.run_dir / rec.CHUNKS_JSONL)
            gevent.spawn(_flush_chunks_loop)
    except RecordsError as exc:
        _fatal(str(exc))
    gevent.spawn(_flush_loop)
    _run.plan = {"run_id": run_id, "index": 0, "count": 1, "t0": time.time()}
    _run.worker_id = "local"
    _run.plan_ready.set()
    sys.stderr.write(f"loadkit: run {run_id}: records in {_run.run_dir}\n")


def _flush_loop() -> None:
    while not _run.finished:
        gevent.sleep(0.5)
        if _run.writer is not None and _run.write_error is None:
            try:
                _run.writer.flush_if_due()
            except RecordsError as exc:
                _write_failed(exc)


def _sender_loop() -> None:
    while True:
        gevent.sleep(1.0)
        _run.send_buffer()


# --- test start / stop -------------------------------------------------------------------


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if _run.role == "worker":
        # the master's options came with the spawn message: parse them again
        try:
            _run.options = parse_options(**_given(environment))
        except (ConfigError, ThresholdError) as exc:
            log.error("loadkit: %s", exc)
        return
    _run.final_done.clear()
    now = time.time()
    if _run.role == "local":
        _run.plan = {"run_id": _run.run_id, "index": 0, "count": 1, "t0": now}
        _run.slot = 0
        return
    runner = environment.runner
    clients = sorted(runner.clients)
    t0 = now + 0.5  # lead time for the plan to reach every worker
    for index, client_id in enumerate(clients):
        runner.send_message(
            MSG_PLAN,
            {"run_id": _run.run_id, "index": index, "count": len(clients), "t0": t0},
            client_id=client_id,
        )


def _on_plan(environment: Any, msg: Any, **_kw: Any) -> None:
    _run.plan = dict(msg.data)
    _run.run_id = _run.plan["run_id"]
    _run.slot = 0
    _run.plan_ready.set()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if _run.role == "worker":
        _run.send_buffer()
    elif _run.role == "master":
        _gather_final(environment)
    elif _run.writer is not None and _run.write_error is None:
        try:
            _run.writer.flush()
        except RecordsError as exc:
            _write_failed(exc)


def _on_final(environment: Any, msg: Any, **_kw: Any) -> None:
    """Worker: the master is finishing: stop users, send every record left, then say done."""
    environment.runner.stop()
    _run.send_buffer()
    environment.runner.send_message(MSG_FINAL_DONE, None)


def _gather_final(environment: Any, timeout: float | None = None) -> None:
    """Master: ask every worker for its last records and wait until each has answered.

    Workers stop their users first (up to the stop timeout), so the wait is that plus 15 s.
    A worker gone missing (killed, lost) is not waited for: what it reported is kept.
    """
    runner = environment.runner
    if timeout is None:
        timeout = float(environment.stop_timeout or 0.0) + 15.0
    clients = [c.id for c in runner.clients.values()
               if c.id not in _run.final_done and c.state != STATE_MISSING]
    if not clients:
        return
    for client_id in clients:
        try:
            runner.send_message(MSG_FINAL, None, client_id=client_id)
        except Exception:
            _run.final_done.add(client_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = {c.id for c in runner.clients.values() if c.state != STATE_MISSING}
        if all(c in _run.final_done or c not in live for c in clients):
            return
        gevent.sleep(0.05)
    log.warning("loadkit: some workers did not send their last records within %g s", timeout)


def _on_final_done(environment: Any, msg: Any, **_kw: Any) -> None:
    _run.final_done.add(msg.node_id)


def _flush_chunks_loop() -> None:
    while not _run.finished and _run.chunk_writer is not None:
        gevent.sleep(0.5)
        try:
            _run.chunk_writer.flush_if_due()
        except (RecordsError, AttributeError):  # the writer failed or was closed meanwhile
            return


def _on_chunks(environment: Any, msg: Any, **_kw: Any) -> None:
    rows = msg.data or []
    for row in rows:
        row["run_id"] = _run.run_id
    _run.add_chunks(rows)


def _on_records(environment: Any, msg: Any, **_kw: Any) -> None:
    rows = msg.data or []
    for row in rows:
        row["run_id"] = _run.run_id
    if _run.writer is not None and _run.write_error is None:
        try:
            _run.writer.write_many(rows)
        except RecordsError as exc:
            _write_failed(exc)
    for row in rows:
        _watch_auth(row)


def _on_abort(environment: Any, msg: Any, **_kw: Any) -> None:
    _abort(msg.data or "aborted by a worker")


def _abort(reason: str) -> None:
    """Stop the run early (once) with a plain message."""
    if _run.aborted:
        return
    _run.aborted = reason
    sys.stderr.write(f"loadkit: {reason}\nloadkit: stopping the run early.\n")
    sys.stderr.flush()
    env = _run.environment
    if _run.role == "worker":
        env.runner.send_message(MSG_ABORT, reason)
        return
    parsed = env.parsed_options
    if parsed is not None and not parsed.headless and env.web_ui is not None:
        gevent.spawn(env.runner.stop)
    else:
        gevent.spawn(env.runner.quit)


def _write_failed(exc: RecordsError) -> None:
    """Records can no longer be written (disk full, folder gone): say so and stop the run."""
    if _run.write_error is not None:
        return
    _run.write_error = str(exc)
    _abort(f"error: {exc}; the records of this run are incomplete")


def _watch_auth(row: dict[str, Any]) -> None:
    if row.get("error_kind") == "auth":
        _run.auth_streak += 1
        if not _run.accepted_any and _run.auth_streak >= AUTH_STREAK:
            _abort(
                f"the target rejected the secret key (HTTP 401) on every batch "
                f"({_run.auth_streak} so far): set TRIGGER_SECRET_KEY to a secret key of the "
                f"target's environment"
            )
    elif row.get("outcome") != "dropped":
        _run.auth_streak = 0
        _run.accepted_any = True


# --- the end -----------------------------------------------------------------------------


def _on_quitting(environment: Any, **_kw: Any) -> None:
    if _run.role == "worker":
        _run.send_buffer()
        return
    if _run.finished or _run.run_dir is None:
        return
    if _run.role == "master":
        _gather_final(environment)
    _run.finished = True
    if _run.chunk_writer is not None:
        with contextlib.suppress(RecordsError):
            _run.chunk_writer.close()
    code = _finish(environment)
    if code is not None:
        environment.process_exit_code = code


def _finish(environment: Any) -> int | None:
    """Close records, write Parquet and run.json, stop the server, check thresholds."""
    assert _run.options is not None
    code: int | None = None
    table = None
    if _run.writer is not None:
        try:
            if _run.write_error is None:
                _run.writer.close()
            else:
                with contextlib.suppress(OSError, RecordsError):
                    _run.writer.close()
        except RecordsError as exc:
            _run.write_error = str(exc)
            sys.stderr.write(f"loadkit: error: {exc}; the records of this run are incomplete\n")
    try:
        rec.write_parquet(_run.run_dir)
        table = rec.read_records(_run.run_dir)
    except RecordsError as exc:
        sys.stderr.write(f"loadkit: error: {exc}\n")
        code = EXIT_CONFIG
    if _run.server is not None:
        with contextlib.suppress(Exception):
            _run.meta["server_stats"] = _run.server.stats()
        _run.server.stop()
    outcomes = Counter(table.column("outcome").to_pylist()) if table is not None else Counter()
    _run.meta.update(
        ended_at=time.time(),
        records=sum(outcomes.values()),
        outcomes=dict(outcomes),
        aborted=_run.aborted,
    )
    thresholds = _run.options.run.thresholds
    if thresholds and table is not None:
        results = evaluate(thresholds, table)
        sys.stdout.write("\n" + format_table(results) + "\n")
        sys.stdout.flush()
        _run.meta["thresholds"] = [
            {"threshold": str(r.threshold), "value": r.value, "passed": r.passed}
            for r in results
        ]
        code = 0 if all(r.passed for r in results) else EXIT_THRESHOLDS_FAILED
    if _run.aborted:
        sys.stderr.write(f"loadkit: run stopped early: {_run.aborted}\n")
        code = EXIT_ABORTED
    if _run.write_error is not None:
        code = EXIT_CONFIG
    _run.meta["write_error"] = _run.write_error
    _run.meta["exit_code"] = code
    try:
        rec.write_run_meta(_run.run_dir, _run.meta)
    except RecordsError as exc:
        sys.stderr.write(f"loadkit: error: {exc}\n")
    sys.stderr.write(
        f"loadkit: run {_run.run_id}: {sum(outcomes.values())} records "
        f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())) or 'none'}) "
        f"in {_run.run_dir}\n"
    )
    return code


# --- the user ----------------------------------------------------------------------------


_VIOLATION_NAME = re.compile(r"[A-Za-z_]+")


def _cause(row: dict[str, Any]) -> str:
    """A short, low-cardinality failure text for locust's statistics."""
    kind = row.get("error_kind")
    status = row.get("status")
    if kind == "auth":
        return "HTTP 401: secret key not accepted"
    if kind == "rate_limited":
        return "HTTP 429: rate limited until attempts ran out"
    if kind == "status":
        return f"HTTP {status}"
    if kind in ("connect", "timeout"):
        return f"{kind} error"
    if kind == "protocol":
        return "protocol error: the answer is not the batch API's"
    if kind:
        return f"{kind} error"
    if row.get("outcome") == "not_sealed":
        return f"not sealed after {row.get('attempts')} attempts"
    if row.get("violations"):
        m = _VIOLATION_NAME.match(row.get("violation_text") or "")
        return "contract violation: " + (m.group(0) if m else "unknown")
    return f"outcome {row.get('outcome')}"


def _fire(environment: Any, name: str, ms: float | None, length: int, failure: str | None) -> None:
    environment.events.request.fire(
        request_type=REQUEST_TYPE,
        name=name,
        response_time=ms or 0.0,
        response_length=length,
        exception=BatchFailure(failure) if failure else None,
        context={},
    )


def _report(environment: Any, row: dict[str, Any]) -> None:
    """Fire locust request events for one batch record."""
    ok = row["outcome"] in ("sealed", "cached")
    created = row.get("batch_id") is not None
    if row.get("create_attempts"):
        _fire(environment, "create", row.get("create_ms") if created else row["total_ms"], 0,
              None if created else _cause(row))
    if row.get("attempts"):
        _fire(environment, "stream", row.get("stream_ms"), row.get("bytes_sent") or 0,
              None if ok else _cause(row))
    failure = None if ok and not row.get("violations") else _cause(row)
    _fire(environment, "batch", row["total_ms"], row.get("bytes_sent") or 0, failure)
    if row.get("total_from_intended_ms") is not None:
        _fire(environment, "batch (from intended start)", row["total_from_intended_ms"],
              row.get("bytes_sent") or 0, failure)


def _dropped_row(user_id: int, seq: int, intended_at: float, now: float) -> dict[str, Any]:
    """The record of a scheduled start that no user could serve in time (nothing sent)."""
    return rec.BatchRecord.blank(
        run_id=_run.run_id, worker_id=_run.worker_id, user_id=user_id, seq=seq,
        intended_at=intended_at, started_at=now, ended_at=now,
        total_from_intended_ms=(now - intended_at) * 1000.0, outcome="dropped",
        error_kind="dropped",
        error=f"open model: started {(now - intended_at):.3f} s late (bound "
              f"{_run.options.run.drop_after:g} s)" if _run.options else None,
    ).as_dict()


def _interrupted_row(user_id: int, seq: int, intended_at: float | None,
                     started_at: float, t0: float) -> dict[str, Any]:
    """The record of a batch killed mid-send at stop (the stop timeout ran out)."""
    row = _dropped_row(user_id, seq, intended_at or started_at, started_at)
    total_ms = (time.perf_counter() - t0) * 1000.0
    row.update(
        intended_at=intended_at, ended_at=started_at + total_ms / 1000.0, total_ms=total_ms,
        total_from_intended_ms=None if intended_at is None
        else (started_at - intended_at) * 1000.0 + total_ms,
        outcome="failed", error_kind="interrupted",
        error="killed mid-send when the run stopped (stop timeout "
              f"{getattr(_run.environment, 'stop_timeout', 0) or 0:g} s ran out): whether the "
              "target created or sealed this batch is unknown; raise --stop-timeout",
    )
    return row


def _wait_time(user: User) -> float:
    opts = _run.options
    if opts is None or opts.run.open_model:
        return 0.0
    lo, hi = opts.run.wait
    return lo if hi <= lo else random.uniform(lo, hi)


class BatchUser(User):
    """Sends generated batches through :class:`loadkit.client.BatchClient`, one at a time."""

    wait_time = _wait_time

    def on_start(self) -> None:
        if not _run.plan_ready.wait(timeout=10):
            index = max(getattr(self.environment.runner, "worker_index", 0), 0)
            log.warning("loadkit: no run plan from the master; numbering batches on my own")
            # a range of its own, far from any planned numbering: batches stay distinct
            _run.plan = {"run_id": _run.run_id or "unknown", "index": (index + 1) << 32,
                         "count": 1, "t0": time.time()}
            _run.plan_ready.set()
        opts = _run.options
        assert opts is not None
        self.user_id = _run.next_user_id()
        host = self.environment.host or _run.target
        # a worker without TRIGGER_SECRET_KEY uses the key the master's embedded server takes
        key = _run.secret_key or wire.DEFAULT_LOCAL_SECRET_KEY
        self.batch_client = opts.client.make_client(host, key, opts.spec.chunk_bytes)

    def on_stop(self) -> None:
        client = getattr(self, "batch_client", None)
        if client is not None and hasattr(client, "close"):
            client.close()

    @task
    def send_batch(self) -> None:
        if _run.aborted:
            gevent.sleep(1.0)
            return
        opts = _run.options
        assert opts is not None
        intended_at = None
        if opts.run.open_model:
            while True:
                seq, intended_at = _run.next_slot()
                now = time.time()
                if now - intended_at > opts.run.drop_after:
                    row = _dropped_row(self.user_id, seq, intended_at, now)
                    _fire(self.environment, "dropped", 0.0, 0,
                          "dropped: no user free within --drop-after")
                    _run.add(row)
                    continue
                if intended_at > now:
                    gevent.sleep(intended_at - now)
                break
        else:
            seq = _run.next_seq()
        batch = opts.spec.batch(seq)
        started_at, t0 = time.time(), time.perf_counter()
        try:
            result = self.batch_client.send(batch)
        except gevent.GreenletExit:
            row = _interrupted_row(self.user_id, seq, intended_at, started_at, t0)
            row.update(run_count=batch.run_count, task_count=len(batch.task_identifiers))
            _fire(self.environment, "batch", row["total_ms"], 0, "interrupted at stop")
            _run.add(row)
            raise
        row = result.to_record(
            run_id=_run.run_id or "", worker_id=_run.worker_id, user_id=self.user_id,
            intended_at=intended_at,
        ).as_dict()
        _report(self.environment, row)
        _run.add(row)
        _watch_auth(row)
        if opts.client.keep_chunk_timings:
            _run.add_chunks(result.chunk_rows(run_id=_run.run_id or "",
                                              worker_id=_run.worker_id, user_id=self.user_id))
