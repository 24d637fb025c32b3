"""Internal: a worker's role: runs users and ships their records to the master.

The worker numbers its batches by the master's plan (``loadkit_plan``), buffers its users'
records and chunk timings and sends them (``loadkit_records``, ``loadkit_chunks``) at least
every second, when a test stops and when it quits. When the master finishes it asks
(``loadkit_final``): the worker stops its users, sends what is left and answers
``loadkit_final_done``. Every record names the worker by locust's client id.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import gevent

from loadkit.errors import ConfigError, ThresholdError
from loadkit.options import RunOptions
from loadkit.vocabulary import ExitCode

from .flags import parse_given_options, set_options
from .messages import (
    CLOCK_EVERY_S,
    CPU_EVERY_S,
    MSG_ABORT,
    MSG_CHUNKS,
    MSG_CLOCK,
    MSG_CPU,
    MSG_FINAL,
    MSG_FINAL_DONE,
    MSG_HELLO,
    MSG_PLAN,
    MSG_RATE,
    MSG_RECORDS,
    MSG_REFUSE,
    ROWS_PER_MESSAGE,
    SEND_EVERY,
)
from .role import Role
from .schedule import Plan

__all__ = ["CLOCK_SAMPLES", "SEND_EVERY", "WorkerRole"]

CLOCK_SAMPLES = 8
"""Clock exchanges kept; the one with the shortest round trip sets the offset."""
_EPOCH_FIELDS = ("intended_at", "started_at", "ended_at")
"""Record fields that are wall-clock times (the rest are durations and counts)."""


log = logging.getLogger("loadkit")


class WorkerRole(Role):
    """Buffers its users' records and sends them to the master."""

    name = "worker"

    def __init__(self, environment: Any, options: RunOptions, secret_key: str | None) -> None:
        super().__init__(environment, options, secret_key)
        self._records: list[dict[str, Any]] = []
        self._chunks: list[dict[str, Any]] = []

    def start(self, runner: Any) -> None:
        self.worker_id = runner.client_id
        runner.register_message(MSG_PLAN, self._on_plan)
        runner.register_message(MSG_FINAL, self._on_final)
        runner.register_message(MSG_RATE, self._on_rate)
        runner.register_message(MSG_REFUSE, self._on_refuse)
        runner.register_message(MSG_CLOCK, self._on_clock)
        self._clock: list[tuple[float, float]] = []
        """(round trip, offset) of the recent clock exchanges."""
        gevent.spawn(self._clock_loop)
        gevent.spawn(self._send_loop)
        self._cpu_loop: Any = None
        self.refused: str | None = None
        import loadkit  # noqa: PLC0415 - its version as it is now (a test may set another)

        runner.send_message(MSG_HELLO, {"version": loadkit.__version__,
                                        "options": set_options(self.environment)})

    def on_test_start(self) -> None:
        # the master's options came with the spawn message: parse them again
        try:
            self.options = parse_given_options(self.environment)
        except (ConfigError, ThresholdError) as exc:
            log.error("loadkit: %s", exc)

    def on_test_stop(self) -> None:
        self.send_buffered()

    def on_quitting(self) -> None:
        self.send_buffered()

    # -- records --------------------------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        if self.clock_offset:  # to the master's time, which the whole run is recorded in
            for key in _EPOCH_FIELDS:
                if record.get(key) is not None:
                    record[key] += self.clock_offset
        self._records.append(record)

    # -- the master's clock -----------------------------------------------------------------

    def _clock_loop(self) -> None:
        while not self.refused:
            runner = self.environment.runner
            rtt, offset = min(self._clock) if self._clock else (None, None)
            try:
                runner.send_message(MSG_CLOCK, {"sent": time.time(), "offset": offset,
                                                "rtt": rtt})
            except Exception:
                log.debug("loadkit: could not send a clock exchange", exc_info=True)
            gevent.sleep(CLOCK_EVERY_S if self._clock else 0.2)

    def _on_clock(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """The master's answer: its clock, read half a round trip before this reading of
        ours (the exchange with the shortest round trip of the last few wins)."""
        received = time.time()
        data = msg.data or {}
        rtt = received - float(data["sent"])
        offset = float(data["master"]) + rtt / 2.0 - received
        self._clock = [*self._clock[-(CLOCK_SAMPLES - 1):], (rtt, offset)]
        self.clock_offset = min(self._clock)[1]

    def add_chunks(self, rows: Sequence[dict[str, Any]]) -> None:
        self._chunks.extend(rows)

    def _on_refuse(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """The master will not take this worker (another loadkit version, other options)."""
        self.refused = str(msg.data)
        self._records.clear()
        self._chunks.clear()
        sys.stderr.write(f"loadkit: error: the master refused this worker: {self.refused}\n")
        sys.stderr.flush()
        environment.process_exit_code = int(ExitCode.CONFIG)
        gevent.spawn(environment.runner.quit)

    def send_buffered(self) -> None:
        """Send buffered rows to the master (one message per :data:`ROWS_PER_MESSAGE`).

        Rows that could not be sent stay buffered for the next try.
        """
        runner = self.environment.runner
        if self.refused:
            return
        while self._records and runner is not None:
            rows = self._records[:ROWS_PER_MESSAGE]
            self._records = self._records[ROWS_PER_MESSAGE:]
            try:
                runner.send_message(MSG_RECORDS, rows)
            except Exception:
                self._records = rows + self._records
                log.warning("loadkit: could not send %d records to the master yet", len(rows))
                return
        while self._chunks and runner is not None:
            rows = self._chunks[:ROWS_PER_MESSAGE]
            self._chunks = self._chunks[ROWS_PER_MESSAGE:]
            try:
                runner.send_message(MSG_CHUNKS, rows)
            except Exception:
                self._chunks = rows + self._chunks
                return

    def _send_loop(self) -> None:
        while True:
            gevent.sleep(SEND_EVERY)
            self.send_buffered()

    # -- messages from the master ----------------------------------------------------------

    def _on_plan(self, environment: Any, msg: Any, **_kw: Any) -> None:
        plan = Plan.from_message(msg.data)
        if plan.run_id != self.run_id:  # a new test: nothing of the last one's end carries
            self.aborted = None
            self._auth_streak = 0
            self._accepted_any = False
        self.run_id = plan.run_id
        self.schedule.set_plan(plan)

    def _on_rate(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """A capacity search's next step: the same change the master made to its timetable."""
        data = msg.data or {}
        self.timetable().set_rate(float(data["at"]), float(data["rate"]))
        if self._cpu_loop is None:
            self._cpu_loop = gevent.spawn(self._send_cpu)

    def _send_cpu(self) -> None:
        """Tell the master this worker's CPU (the capacity search's view of the generator)."""
        runner = self.environment.runner
        while True:
            try:
                runner.send_message(MSG_CPU, {"at": time.time(), "cpu": time.process_time()})
            except Exception:
                log.debug("loadkit: could not send the CPU sample", exc_info=True)
            gevent.sleep(CPU_EVERY_S)

    def _on_final(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """The master is finishing: stop the users, send every record left, then say done."""
        environment.runner.stop()
        self.send_buffered()
        environment.runner.send_message(MSG_FINAL_DONE, None)

    def _stop_early(self, reason: str) -> None:
        self.environment.runner.send_message(MSG_ABORT, reason)
