"""Internal: the process that owns the run: the local runner, or the master of workers.

At start-up it resolves the target (``--host`` / ``TRIGGER_API_URL``, or the embedded
reference server started in its own process), creates the run directory and opens the
records (:class:`~loadkit.locust.recording.Recording`); at the end it closes them, writes
Parquet and run.json, checks the thresholds and sets the exit code. Setting up and closing
the run (:meth:`RunOwner.begin_run`, :meth:`RunOwner.finish_run`) are separate from the
process's own start and quit: with ``--headless`` the run is the process's one test; in the
web UI every test (Start … Stop) is a run of its own, with its own id, directory, Parquet,
run.json and thresholds, all written when the test stops (:meth:`RunOwner.open_test_run`,
:meth:`RunOwner.end_test_run`), while the web UI's loadkit tab shows it live
(:mod:`loadkit.locust.webui`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import gevent
import gevent.event
import numpy as np
from locust import __version__ as locust_version

from loadkit import __version__ as loadkit_version
from loadkit import records as rec
from loadkit import wire
from loadkit.errors import ConfigError, RecordsError, ServerError
from loadkit.options import RunOptions, new_run_id
from loadkit.vocabulary import ExitCode

from .capacity import CapacityController, CpuSamples
from .recording import Recording
from .role import Role, exit_at_start_up
from .schedule import Plan

if TYPE_CHECKING:
    from loadkit.live import LiveRun
    from loadkit.server import ReferenceServer

    from .webui import WebTab

__all__ = ["DEFAULT_STOP_TIMEOUT", "RunOwner"]

DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds batches in flight get to finish when the run stops, unless --stop-timeout is given."""

log = logging.getLogger("loadkit")

_LOCUST_SETTINGS = ("num_users", "spawn_rate", "run_time", "headless", "processes",
                    "expect_workers", "master")
"""locust's own settings that run.json records (with the stop timeout)."""


class RunOwner(Role):
    """Owns the run directory, the target and, without ``--host``, the embedded server."""

    def __init__(self, environment: Any, options: RunOptions, secret_key: str | None) -> None:
        super().__init__(environment, options, secret_key)
        self.server: ReferenceServer | None = None
        self.recording: Recording | None = None
        self.capacity: CapacityController | None = None
        """The capacity search, when ``--capacity true``."""
        self.cpu = CpuSamples()
        """The load generators' CPU (this process's own users, or the workers')."""
        self.tab: WebTab | None = None
        """loadkit's tab and routes in locust's web UI (None when headless)."""
        self.live: LiveRun | None = None
        """The current run's figures for the web UI's tab."""
        self.ended_runs: set[str] = set()
        """Runs of this process that have ended (late records of theirs are not taken)."""
        self._idle = gevent.event.Event()
        self._idle.set()
        self._tests = 0

    @property
    def per_test(self) -> bool:
        """Each test is a run of its own: the web UI starts and stops them."""
        parsed = self.environment.parsed_options
        return parsed is not None and not parsed.headless and \
            getattr(self.environment, "web_ui", None) is not None

    # -- start ----------------------------------------------------------------------------

    def start(self, runner: Any) -> None:
        self.register_messages(runner)
        env = self.environment
        host = env.host or os.environ.get("TRIGGER_API_URL") or None
        if host and not self.secret_key:
            self.fatal("a target is given (--host / TRIGGER_API_URL) but TRIGGER_SECRET_KEY "
                       "is not set; export the secret key of the environment to load-test")
        results = self.options.run.results_dir
        try:
            if self.per_test:  # the runs come with the tests: prove the folder writable now
                probe = rec.create_run_dir(results, f".probe-{os.getpid()}")
                probe.rmdir()
            else:
                run_id = self.options.run.run_id or new_run_id()
                run_dir = rec.create_run_dir(results, run_id)
        except (RecordsError, OSError) as exc:
            self.fatal(str(exc))
        if not host:
            host = self._start_server()
        env.host = host
        self.target = host
        if not env.stop_timeout:
            env.stop_timeout = DEFAULT_STOP_TIMEOUT
        if self.per_test:
            from .webui import install  # noqa: PLC0415

            self.tab = install(self)
        else:
            self.begin_run(run_id, run_dir)

    def register_messages(self, runner: Any) -> None:
        """Register the custom messages this role answers (none for a local runner)."""

    def _start_server(self) -> str:
        """Start the embedded reference server (its own process); its URL."""
        key = self.secret_key or wire.DEFAULT_LOCAL_SECRET_KEY
        self.secret_key = key
        try:
            from loadkit.server import ReferenceServer  # noqa: PLC0415

            self.server = ReferenceServer(self.options.server_config(key),
                                          mode="process").start()
        except (ConfigError, ServerError) as exc:
            self.fatal(f"cannot start the embedded reference server: {exc}")
        url = self.server.url
        assert url is not None
        log.info("loadkit: no --host given: reference server started at %s", url)
        return url

    def begin_run(self, run_id: str, run_dir: Path) -> None:
        """Start recording a run into ``run_dir``: run.json, the writers, the plan."""
        try:
            self.recording = Recording.open(
                run_id, run_dir, self._meta(run_id),
                keep_chunks=self.options.client.keep_chunk_timings,
                on_write_error=self._write_failed)
        except RecordsError as exc:
            if self.per_test:  # a web UI session goes on: the caller stops this test
                raise
            self.fatal(str(exc))
        self.run_id = run_id
        self.schedule.set_plan(Plan(run_id=run_id, index=0, count=1, t0=time.time()))
        self.worker_id = "local"
        if self.options.capacity is not None:
            spec = self.options.spec
            sizes = spec.items.sample(np.random.default_rng(0), 100_000, low=1,
                                      high=spec.max_items)
            self.capacity = CapacityController(self, self.options.capacity,
                                               float(sizes.mean()),
                                               distributed=self.name == "master")
        if self.tab is not None:
            from loadkit.live import LiveRun  # noqa: PLC0415

            self.live = LiveRun(run_id, run_dir, thresholds=self.options.run.thresholds)
            self.tab.run_started(self.live)
        sys.stderr.write(f"loadkit: run {run_id}: records in {run_dir}\n")

    def open_test_run(self) -> bool:
        """Web UI: a test starts, and with it a run of its own (after the last one closed);
        False when the run could not be opened (the test is stopped, the tab says why).

        The embedded server's counters start again from zero, so that the run's run.json
        holds its own. A folder that cannot be made stops the test with one line."""
        if not self.per_test:
            return True
        self._idle.wait()
        self._tests += 1
        given = self.options.run.run_id
        run_id = (given if self._tests == 1 else f"{given}-{self._tests}") if given \
            else new_run_id()
        self.recording = self.live = self.capacity = None
        self.run_id = None
        self.aborted = None
        try:
            run_dir = rec.create_run_dir(self.options.run.results_dir, run_id)
            if self.server is not None:
                try:
                    self.server.reset_stats()
                except Exception as exc:  # the run goes on; its server counters say so
                    log.warning("loadkit: could not reset the reference server's counters: "
                                "%s", exc)
            self._idle.clear()
            self.begin_run(run_id, run_dir)
        except RecordsError as exc:
            self.recording = self.live = self.capacity = None
            self.run_id = None
            self._idle.set()
            message = f"{exc}; the test is stopped"
            log.error("loadkit: %s", message)
            if self.tab is not None:
                self.tab.run_failed(message)
            gevent.spawn(self.environment.runner.stop)
            return False
        return True

    def end_test_run(self) -> None:
        """Web UI: the test stopped: close its run (Parquet, run.json, thresholds, summary)."""
        if not self.per_test or self.recording is None or self.recording.finished:
            return
        try:
            self.close_run()
            self.recording.print_summary()
        finally:
            self._idle.set()

    def close_run(self) -> None:
        """Close the current run: the capacity search's answer, the last records, the
        files; the process's exit code becomes the run's."""
        assert self.recording is not None
        if self.capacity is not None:
            self.capacity.stop()  # a search the user stopped ends here, not in the next run
            self.capacity.finish()
        self.gather_final()
        code = self.finish_run()
        if self.run_id is not None:
            self.ended_runs.add(self.run_id)
        if self.tab is not None and self.live is not None:
            self.tab.run_ended(self.live, self.recording.table)
        if code is not None or self.per_test:  # web UI: the last test's, whatever it was
            self.environment.process_exit_code = code

    @property
    def run_dir(self) -> Path | None:
        return None if self.recording is None else self.recording.run_dir

    # -- the open model's rate (a capacity search) -----------------------------------------

    def set_rate(self, at: float, rate: float) -> int:
        """From epoch time ``at`` on, ``rate`` batch starts per second across the run;
        returns the first batch number the new rate schedules."""
        return self.timetable().set_rate(at, rate)

    def stop_run(self) -> None:
        """End the run (a capacity search that has its answer)."""
        self._stop_early("the capacity search is over")
        gevent.spawn_later(0.1, self.timetable().wake)  # users waiting for a start give up

    def _meta(self, run_id: str) -> dict[str, Any]:
        """run.json as written at the start (completed at the end)."""
        env, opts = self.environment, self.options
        parsed = env.parsed_options
        return {
            "run_id": run_id,
            "started_at": time.time(),
            "ended_at": None,
            "loadkit_version": loadkit_version,
            "locust_version": locust_version,
            "python_version": sys.version.split()[0],
            "target": redact_url(env.host),
            "embedded_server": None if self.server is None else self.server.config.redacted(),
            "model": "open" if opts.run.open_model else "closed",
            "options": opts.as_dict(),
            "locust": {name: getattr(parsed, name, None) for name in _LOCUST_SETTINGS}
            | {"stop_timeout": env.stop_timeout} if parsed else {},
            "role": self.name,
        }

    def fatal(self, message: str) -> NoReturn:
        """Stop at start-up with one clear line, stopping the embedded server first."""
        self._stop_server()
        exit_at_start_up(message)

    # -- records --------------------------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        self.take((record,))

    def take(self, rows: Sequence[dict[str, Any]]) -> None:
        """Batch records of the run (this process's users' or a worker's): written, and
        shown to the capacity search."""
        if self.recording is not None:
            self.recording.write(rows)
        if self.live is not None:
            self.live.add(rows)
        if self.capacity is not None:
            self.capacity.observe(rows)

    def add_chunks(self, rows: Sequence[dict[str, Any]]) -> None:
        if self.recording is not None:
            self.recording.write_chunks(rows)

    def _write_failed(self, exc: RecordsError) -> None:
        """Records can no longer be written (disk full, folder gone): stop the run."""
        self.abort(f"error: {exc}; the records of this run are incomplete")

    def _stop_early(self, reason: str) -> None:
        env = self.environment
        parsed = env.parsed_options
        if parsed is not None and not parsed.headless and env.web_ui is not None:
            gevent.spawn(env.runner.stop)
        else:
            gevent.spawn(env.runner.quit)

    # -- the end --------------------------------------------------------------------------

    def on_quitting(self) -> None:
        if self.recording is not None and not self.recording.finished:
            if self.per_test:
                # quit while a test runs (Ctrl-C): stop its users first, so that every record
                # is in when test_stop closes the run
                with contextlib.suppress(Exception):
                    self.environment.runner.stop()
                self.end_test_run()
            else:
                self.close_run()
        self._stop_server()

    def run_extra_meta(self) -> dict[str, Any]:
        """What this role adds to the run's final run.json (a master: its missing workers)."""
        return {}

    def gather_final(self) -> None:
        """Wait for records still on their way (a master's workers); none for a local run."""

    def finish_run(self) -> int | None:
        """Close the run's records, write Parquet and run.json, check the thresholds.

        Returns the exit code the run decides, or None to leave locust's own.
        """
        assert self.recording is not None
        extra: dict[str, Any] = {}
        if self.server is not None:
            with contextlib.suppress(Exception):
                extra["server_stats"] = self.server.stats()
        if self.capacity is not None and self.capacity.answer is not None:
            extra["capacity"] = {k: v for k, v in self.capacity.answer.items() if k != "steps"}
        extra.update(self.run_extra_meta())
        code = self.recording.finish(thresholds=self.options.run.thresholds,
                                     aborted=self.aborted, extra_meta=extra,
                                     baseline=self.options.run.baseline)
        if code is None and self.capacity is not None:
            code = ExitCode.OK  # the answer is the product: failed steps are not a failure
        return code

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()


def redact_url(url: str) -> str:
    """``url`` without the user and password it may carry."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
