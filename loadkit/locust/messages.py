"""Internal: the custom locust messages between the master and its workers.

=====================  ===============  ===================================================
message                direction        data
=====================  ===============  ===================================================
``loadkit_plan``       master → worker  the worker's share of the numbering
                                        (:meth:`loadkit.locust.schedule.Plan.as_message`)
``loadkit_records``    worker → master  up to :data:`ROWS_PER_MESSAGE` record dicts
``loadkit_chunks``     worker → master  up to :data:`ROWS_PER_MESSAGE` chunk-timing rows
``loadkit_final``      master → worker  none: stop your users, send what is left, then answer
``loadkit_final_done`` worker → master  none: every record of this worker has been sent
``loadkit_abort``      worker → master  the reason the run must stop early (a string)
``loadkit_rate``       master → worker  a capacity search's new rate: ``{"at", "rate"}``
                                        (epoch s, batch starts per second, whole run)
``loadkit_cpu``        worker → master  ``{"at", "cpu"}``: the worker's CPU seconds so far
                                        (every :data:`CPU_EVERY_S` in a capacity search)
``loadkit_hello``      worker → master  at connect: ``{"version", "options"}``, loadkit's
                                        version and the run options the worker was given
                                        (those it leaves at their default are the master's)
``loadkit_refuse``     master → worker  why the worker cannot join (a string): it quits
``loadkit_clock``      worker → master  ``{"sent", "offset", "rtt"}``: the worker's clock when
                                        sent, and its last offset estimate (every
                                        :data:`CLOCK_EVERY_S`, and at connect)
``loadkit_clock``      master → worker  ``{"sent", "master"}``: the same ``sent`` and the
                                        master's clock when it answered
=====================  ===============  ===================================================
"""

from __future__ import annotations

__all__ = [
           "CLOCK_EVERY_S",
           "CPU_EVERY_S",
           "MSG_ABORT",
           "MSG_CHUNKS",
           "MSG_CLOCK",
           "MSG_CPU",
           "MSG_FINAL",
           "MSG_FINAL_DONE",
           "MSG_HELLO",
           "MSG_PLAN",
           "MSG_RATE",
           "MSG_RECORDS",
           "MSG_REFUSE",
           "ROWS_PER_MESSAGE",
           "SEND_EVERY",
]

MSG_PLAN = "loadkit_plan"
MSG_RECORDS = "loadkit_records"
MSG_CHUNKS = "loadkit_chunks"
MSG_FINAL = "loadkit_final"
MSG_FINAL_DONE = "loadkit_final_done"
MSG_ABORT = "loadkit_abort"
MSG_RATE = "loadkit_rate"
MSG_CPU = "loadkit_cpu"
MSG_HELLO = "loadkit_hello"
MSG_REFUSE = "loadkit_refuse"
MSG_CLOCK = "loadkit_clock"

CLOCK_EVERY_S = 5.0
"""Seconds between a worker's clock exchanges with the master (the first at connect)."""

CPU_EVERY_S = 0.5
"""Seconds between samples of a load generator's CPU during a capacity search."""

SEND_EVERY = 1.0
"""Seconds between a worker's sends of its buffered rows (what a lost worker may not have
sent is at most one such interval's records plus its batches in flight)."""

ROWS_PER_MESSAGE = 2000
"""A worker sends its buffered rows in messages of at most this many."""
