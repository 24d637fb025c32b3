"""The locust adapter: the ONLY package of loadkit that imports locust (and gevent).

``locustfiles/stream.py`` imports :class:`BatchUser` from here; importing this package
registers loadkit's flags and listeners with locust's events (nothing else happens at import).
``import loadkit`` never imports it.

Layout
    :mod:`~loadkit.locust.user` the user; :mod:`~loadkit.locust.listeners` locust's events →
    the process's role, picked once at ``init``: :mod:`~loadkit.locust.local`,
    :mod:`~loadkit.locust.master` or :mod:`~loadkit.locust.worker` (their common parts in
    :mod:`~loadkit.locust.role` and, for the two that own the run,
    :mod:`~loadkit.locust.owner`); :mod:`~loadkit.locust.recording` the run directory's
    files; :mod:`~loadkit.locust.schedule` batch numbers and the open model's timetable;
    :mod:`~loadkit.locust.stats` locust's request events; :mod:`~loadkit.locust.placeholders`
    records of batches with no result; :mod:`~loadkit.locust.messages` the master/worker
    messages; :mod:`~loadkit.locust.flags` loadkit's options as locust flags.

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

from loadkit.vocabulary import ExitCode

from .listeners import register
from .owner import DEFAULT_STOP_TIMEOUT
from .user import BatchUser

__all__ = ["DEFAULT_STOP_TIMEOUT", "EXIT_ABORTED", "EXIT_CONFIG", "EXIT_THRESHOLDS_FAILED",
           "BatchUser"]

EXIT_CONFIG = ExitCode.CONFIG
EXIT_THRESHOLDS_FAILED = ExitCode.THRESHOLDS_FAILED
EXIT_ABORTED = ExitCode.ABORTED

register()
