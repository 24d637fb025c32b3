"""Internal: the master's role: owns the run and collects its workers' records.

At each test start the master gives every connected worker its share of the batch numbers
and the open model's timetable (``loadkit_plan``, half a second ahead so the plan reaches
every worker before the first start). Workers send their records (``loadkit_records``,
``loadkit_chunks``) at least every second; the master writes them and watches them for a
rejected key. When a test stops and when the run ends, the master asks every worker for its
last records (``loadkit_final``) and waits for each to answer (``loadkit_final_done``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import gevent
from locust.runners import STATE_MISSING

from loadkit.options import RunOptions

from .flags import differences, given_options
from .messages import (
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
    SEND_EVERY,
)
from .owner import RunOwner
from .schedule import Plan

__all__ = ["FINAL_GRACE", "PLAN_LEAD", "MasterRole"]

PLAN_LEAD = 0.5
"""Seconds between sending the plans and the timetable's origin."""
FINAL_GRACE = 15.0
"""Seconds a worker gets, beyond the stop timeout, to send its last records."""

log = logging.getLogger("loadkit")


class MasterRole(RunOwner):
    """Writes the records its workers send; runs no users itself."""

    name = "master"

    def __init__(self, environment: Any, options: RunOptions, secret_key: str | None) -> None:
        super().__init__(environment, options, secret_key)
        self.final_done: set[str] = set()
        """Workers that sent their last records of this test."""
        self.refused: dict[str, str] = {}
        """Workers refused at connect (another loadkit version, other options): why."""
        self.clocks: dict[str, dict[str, Any]] = {}
        """Per worker: its clock's offset from the master's (master − worker, seconds) as it
        last reported it, with the round trip it was measured over."""
        self.heard: dict[str, dict[str, Any]] = {}
        """Per worker of the current run: records taken, first and last record end, when its
        last records message came, its users."""

    def register_messages(self, runner: Any) -> None:
        runner.register_message(MSG_RECORDS, self._on_records)
        runner.register_message(MSG_CHUNKS, self._on_chunks)
        runner.register_message(MSG_FINAL_DONE, self._on_final_done)
        runner.register_message(MSG_ABORT, self._on_abort)
        runner.register_message(MSG_CPU, self._on_cpu)
        runner.register_message(MSG_HELLO, self._on_hello)
        runner.register_message(MSG_CLOCK, self._on_clock)

    # -- test start and stop ---------------------------------------------------------------

    def on_test_start(self) -> None:
        """Give every worker its share: worker i of W takes batches i, i+W, i+2W …"""
        self.heard = {}
        if not self.open_test_run():
            return
        self.final_done.clear()
        runner = self.environment.runner
        clients = sorted(c for c in runner.clients if c not in self.refused)
        t0 = time.time() + PLAN_LEAD
        for index, client_id in enumerate(clients):
            plan = Plan(run_id=self.run_id, index=index, count=len(clients), t0=t0)
            runner.send_message(MSG_PLAN, plan.as_message(), client_id=client_id)
        if self.capacity is not None:
            self.schedule.set_plan(Plan(run_id=self.run_id, index=0, count=1, t0=t0))
            self.capacity.start()

    def set_rate(self, at: float, rate: float) -> int:
        """The new rate, here and on every worker (each numbers the same starts)."""
        runner = self.environment.runner
        for client_id in sorted(runner.clients):
            try:
                runner.send_message(MSG_RATE, {"at": at, "rate": rate}, client_id=client_id)
            except Exception:
                log.warning("loadkit: could not send the new rate to worker %s", client_id)
        return super().set_rate(at, rate)

    def on_test_stop(self) -> None:
        if self.per_test:
            self.end_test_run()
        else:
            self.gather_final()

    def gather_final(self, timeout: float | None = None) -> None:
        """Ask every worker for its last records and wait until each has answered.

        Workers stop their users first (up to the stop timeout), so the wait is that plus
        :data:`FINAL_GRACE`. A worker gone missing (killed, lost) is not waited for: what
        it reported is kept.
        """
        runner = self.environment.runner
        if timeout is None:
            timeout = float(self.environment.stop_timeout or 0.0) + FINAL_GRACE
        clients = [c.id for c in runner.clients.values()
                   if c.id not in self.final_done and c.id not in self.refused
                   and c.state != STATE_MISSING]
        if not clients:
            return
        for client_id in clients:
            try:
                runner.send_message(MSG_FINAL, None, client_id=client_id)
            except Exception:
                self.final_done.add(client_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {c.id for c in runner.clients.values() if c.state != STATE_MISSING}
            if all(c in self.final_done or c not in live for c in clients):
                return
            gevent.sleep(0.05)
        log.warning("loadkit: some workers did not send their last records within %g s",
                    timeout)

    # -- messages from the workers ---------------------------------------------------------

    def _note(self, worker: str, rows: list[dict[str, Any]]) -> None:
        seen = self.heard.setdefault(worker, {"records": 0, "first": None, "last": None,
                                              "message_at": None})
        seen["records"] += len(rows)
        seen["message_at"] = time.time()
        ends = [r["ended_at"] for r in rows if r.get("ended_at")]
        if ends:
            seen["first"] = min(ends) if seen["first"] is None else min(seen["first"], *ends)
            seen["last"] = max(ends) if seen["last"] is None else max(seen["last"], *ends)
        client = self.environment.runner.clients.get(worker)
        if client is not None:
            seen["users"] = max(seen.get("users", 0), int(getattr(client, "user_count", 0)))

    def run_extra_meta(self) -> dict[str, Any]:
        """Workers whose last records never came (lost, killed, cut off past locust's heartbeat
        timeout): each with what it sent and a bound on what it may not have sent. A worker
        sends its records every SEND_EVERY seconds, so what can be missing is at most two
        such intervals' records (those still buffered, and the last message, which may have
        been on its way when the worker was lost) plus one batch per user in flight."""
        missing = []
        for worker, seen in sorted(self.heard.items()):
            if worker in self.final_done or worker in self.refused:
                continue
            span = (seen["last"] - seen["first"]) if seen["first"] and seen["last"] else 0.0
            rate = seen["records"] / span if span > 0 else float(seen["records"])
            client = self.environment.runner.clients.get(worker)
            users = max(int(seen.get("users", 0)), 1)
            missing.append({
                "worker_id": worker,
                "state": getattr(client, "state", "gone") if client is not None else "gone",
                "records": seen["records"],
                "last_heard_at": seen["message_at"],
                "records_per_s": rate,
                "may_be_missing_at_most": math.ceil(2 * rate * SEND_EVERY) + users,
            })
        out: dict[str, Any] = {"missing_workers": missing} if missing else {}
        if self.clocks:
            out["clock_offsets"] = dict(sorted(self.clocks.items()))
        return out

    def _on_clock(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """A worker's clock exchange: answer with this clock, keep its last estimate."""
        data = msg.data or {}
        with contextlib.suppress(Exception):
            environment.runner.send_message(
                MSG_CLOCK, {"sent": data.get("sent"), "master": time.time()},
                client_id=msg.node_id)
        if data.get("offset") is not None:
            entry = self.clocks.setdefault(msg.node_id, {"first_offset_s": data["offset"]})
            entry.update(offset_s=data["offset"], rtt_ms=float(data["rtt"]) * 1000.0,
                         at=time.time())

    def _on_hello(self, environment: Any, msg: Any, **_kw: Any) -> None:
        """A worker connected: refuse it, in one line each side, when its loadkit version or
        the run options it was given differ from the master's."""
        import loadkit  # noqa: PLC0415

        data = msg.data or {}
        reasons = []
        if data.get("version") != loadkit.__version__:
            reasons.append(f"loadkit {data.get('version')} (the master's: "
                           f"{loadkit.__version__})")
        reasons += differences(given_options(self.environment), data.get("options") or {})
        if not reasons:
            return
        why = "; ".join(reasons)
        self.refused[msg.node_id] = why
        log.error("loadkit: refused worker %s: %s", msg.node_id, why)
        runner = environment.runner
        with contextlib.suppress(Exception):
            runner.send_message(MSG_REFUSE, why, client_id=msg.node_id)
        # It no longer counts as connected (--expect-workers) nor gets users; its own quit
        # then finds it gone, so it is not "the last worker" whose leaving ends the run.
        client = runner.clients.get(msg.node_id)
        if client is not None:
            del runner.clients[msg.node_id]
            dispatcher = getattr(runner, "_users_dispatcher", None)
            if dispatcher is not None:
                dispatcher.remove_worker(client)

    def _on_records(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if msg.node_id in self.refused:
            return
        rows = self._current(msg.data or [])
        for row in rows:
            row["run_id"] = self.run_id
        self._note(msg.node_id, rows)
        self.take(rows)
        if not self._accepted_any:  # once a batch was accepted, 401s no longer stop the run
            for row in rows:
                self.watch_auth(row.get("error_kind"), row.get("outcome"))

    def _on_chunks(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if msg.node_id in self.refused:
            return
        rows = self._current(msg.data or [])
        for row in rows:
            row["run_id"] = self.run_id
        self.add_chunks(rows)

    def _current(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` without those of a run that has already ended (a worker's late send
        after its test's run closed): they belong to no open run."""
        if not self.ended_runs:
            return rows
        kept = [r for r in rows if r.get("run_id") not in self.ended_runs]
        if len(kept) < len(rows):
            log.warning("loadkit: %d records of an ended run arrived late; not taken",
                        len(rows) - len(kept))
        return kept

    def _on_final_done(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.final_done.add(msg.node_id)

    def _on_cpu(self, environment: Any, msg: Any, **_kw: Any) -> None:
        data = msg.data or {}
        self.cpu.add(str(msg.node_id), float(data.get("at", 0.0)), float(data.get("cpu", 0.0)))

    def _on_abort(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.abort(msg.data or "aborted by a worker")
