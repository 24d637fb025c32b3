"""The batch record: one row per batch, the one schema every writer and reader uses.

A run directory (``results/<run_id>/``) holds:

- ``run.json`` — run id, start/end, versions, every option (secret key redacted), target,
  reference-server settings when embedded, ``schema_version``;
- ``records.jsonl`` — one JSON object per batch (the fields of :class:`BatchRecord`),
  appended and flushed at least every second while the run goes on: a killed run leaves a
  readable file that loses at most the last second (a torn last line is skipped on read);
- ``records.parquet`` — the same rows, written once at the end with :data:`ARROW_SCHEMA`;
- ``chunks.jsonl`` — only with ``keep_chunk_timings``: one row per body chunk written
  (:data:`CHUNK_FIELDS`), appended as crash-safely as ``records.jsonl``.

Times: ``*_at`` fields are wall-clock epoch seconds (``time.time()``); ``*_ms`` fields are
durations in milliseconds measured with ``time.perf_counter()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from loadkit.errors import RecordsError
from loadkit.vocabulary import OUTCOMES

__all__ = [
    "ARROW_SCHEMA",
    "CHUNKS_JSONL",
    "CHUNK_FIELDS",
    "FIELD_NAMES",
    "OUTCOMES",
    "RECORDS_JSONL",
    "RECORDS_PARQUET",
    "RUN_META",
    "SCHEMA_VERSION",
    "BatchRecord",
    "RecordWriter",
    "atomic_write",
    "create_run_dir",
    "read_jsonl",
    "read_records",
    "read_run_meta",
    "records_table",
    "torn_tail",
    "write_parquet",
    "write_run_meta",
]

SCHEMA_VERSION = 4
"""2 added ``tasks``, 3 ``write_ms`` (and the chunks' ``stall_ms``), 4 ``notes``,
``rate_limiter`` and ``client_mode``; older runs load with them empty."""

# OUTCOMES (the values of ``outcome``) are defined in loadkit.vocabulary and re-exported here.


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch, flat. Optional fields are None when they do not apply."""

    # identity
    run_id: str
    """The run's id (its folder name under the results directory)."""
    worker_id: str
    """Which locust process sent the batch: ``local`` or the worker's client id."""
    user_id: int
    """Which user of that process (0, 1, …)."""
    seq: int
    """The batch's number in the run; the same seed and seq make the same batch."""
    batch_id: str | None
    """The id the target gave the batch (None when the create failed)."""
    # timing (epoch seconds, then milliseconds)
    intended_at: float | None
    """Open model: when the batch was scheduled to start; None in the closed model."""
    started_at: float
    """Epoch seconds: when the batch's create was sent."""
    ended_at: float
    """Epoch seconds: when its last answer was read."""
    create_ms: float | None
    """Latency of the create request that succeeded (None when none did)."""
    stream_ms: float | None
    """Sum of all stream attempts' durations."""
    total_ms: float
    """From the actual start to the end of the last attempt."""
    total_from_intended_ms: float | None
    """From the intended start (coordinated-omission-aware); None in the closed model."""
    # outcome
    outcome: str
    """``sealed``, ``cached``, ``not_sealed``, ``failed`` or ``dropped`` (open model)."""
    sealed: bool
    """The target sealed the batch."""
    sealed_attempt: int | None
    """Which stream attempt sealed the batch (1 = the first)."""
    attempts: int
    """Stream attempts made."""
    create_attempts: int
    """Create requests made (1 unless the create was retried)."""
    status: int | None
    """HTTP status of the last stream attempt (of the create when no stream was made)."""
    error_kind: str | None
    """Why the batch failed: auth, connect, timeout, protocol, status, rate_limited …"""
    error: str | None
    """The error's message, secret key redacted (None when the batch did not fail)."""
    retry_reasons: str
    """Comma-separated reason each retried attempt ended, e.g. ``not_sealed,connect,429``;
    retried creates come first, prefixed ``create:`` (``create:429,create:connect,503``)."""
    # sizes and server answers
    run_count: int
    """Items in the batch (the create's ``runCount``)."""
    task_count: int
    """Distinct task identifiers among its items."""
    payload_bytes: int
    """Sum of the batch's drawn payload sizes (first stream's items)."""
    lines_sent: int
    """Body lines sent over all stream attempts."""
    bytes_sent: int
    """Body bytes sent over all stream attempts."""
    items_accepted: int
    """Sum of itemsAccepted over all stream answers."""
    items_deduplicated: int
    """Sum of itemsDeduplicated over all stream answers."""
    enqueued_count: int | None
    """Items enqueued so far, from the last ``sealed: false`` answer."""
    expected_count: int | None
    """The runCount the last ``sealed: false`` answer reported."""
    # what the generator expected of the first stream
    expected_status: int
    """The first stream's status the generator expected (200, 400 or 422)."""
    expected_accepted: int
    """itemsAccepted the generator expected of the first stream."""
    expected_deduplicated: int
    """itemsDeduplicated the generator expected of the first stream."""
    expected_sealed: bool
    """Whether the generator expected the first stream to seal the batch."""
    fault_duplicate: int
    """Injected duplicate lines in the first stream."""
    fault_gap: int
    """Items left out of the first stream."""
    fault_shuffle: int
    """1 when the first stream's lines were shuffled."""
    fault_malformed: int
    """1 when the first stream held a line that is not JSON."""
    fault_schema: int
    """1 when the first stream held a line that is not a batch item."""
    fault_out_of_range: int
    """1 when the first stream held an index at or beyond runCount."""
    fault_oversized: int
    """1 when an item was larger than the item limit."""
    # truth checks
    violations: int
    """Named contract violations found on this batch."""
    violation_text: str | None
    """``; ``-separated named contract violations (answers that differ from the expected)."""
    verified: bool | None
    """Retrieve-after-seal check: True passed, False failed, None not done."""
    # backpressure and rates
    stall_ms: float
    """Time the body's writes waited on the target (the socket's send buffer full), all
    attempts: backpressure. The cost of writing itself is in ``write_ms``."""
    stall_fraction: float
    """stall_ms ÷ stream_ms."""
    max_stall_ms: float
    """The longest single stall of one chunk write."""
    send_bytes_per_s: float | None
    """bytes_sent ÷ stream time."""
    send_items_per_s: float | None
    """lines_sent ÷ stream time."""
    response_tail_ms: float | None
    """From the last byte written to the response (the server's ingest tail and seal)."""
    rate_limit_wait_ms: float
    """Time waited on 429 answers before retrying."""
    rate_limited: int
    """429 answers received (create and stream)."""
    ratelimit_reset_unit: str | None
    """How the server sent ``x-ratelimit-reset``: ``s`` (epoch seconds) or ``ms``."""
    # added in schema version 2
    tasks: str | None = None
    """Items per task identifier, ``name:count`` joined by commas in name order."""
    # added in schema version 3
    write_ms: float | None = None
    """Time the body's writes took in all attempts: framing, the kernel's copy and any wait
    (``stall_ms`` is the wait)."""
    # added in schema version 4
    notes: str | None = None
    """``; ``-separated remarks that are no violation: an error text whose detail (after its
    stable prefix) differs from the reference server's, a connection reset met after an early
    error answer (the request re-sent), why ``verified`` is empty although verify ran."""
    rate_limiter: str | None = None
    """Which limiter answered this batch's 429s: ``batch`` (the create's token bucket, a JSON
    ``error`` body), ``api`` (the general API limiter, an ``application/problem+json`` body),
    or both comma-separated in that order; None without a 429."""
    client_mode: str | None = None
    """How the client streamed: ``loadkit`` (coalesced chunks) or ``sdk`` (as the official
    SDK: one line per write, the whole stream re-sent on retry, the SDK's backoff); None in
    runs recorded before the field existed."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @classmethod
    def blank(cls, **overrides: Any) -> BatchRecord:
        """A placeholder record: every field blank by its type, then ``overrides``.

        Blank is None for an optional field, ``0``/``0.0``/``False``/``""`` for a required
        int/float/bool/str, and the declared default where there is one. Used for rows of
        batches that sent nothing (``dropped``, ``interrupted``) and for test records.
        """
        return cls(**{**_BLANK, **overrides})


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BatchRecord))

_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _arrow_field(name: str, annotation: Any) -> pa.Field:
    args = typing.get_args(annotation)
    nullable = isinstance(annotation, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if nullable else annotation
    return pa.field(name, _ARROW_TYPES[base], nullable=nullable)


_HINTS = typing.get_type_hints(BatchRecord)


def _blank_value(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    annotation = _HINTS[field.name]
    if isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation):
        return None
    return annotation()  # int() == 0, float() == 0.0, bool() is False, str() == ""


_BLANK: dict[str, Any] = {f.name: _blank_value(f) for f in dataclasses.fields(BatchRecord)}
ARROW_SCHEMA: pa.Schema = pa.schema(
    [_arrow_field(name, _HINTS[name]) for name in FIELD_NAMES],
    metadata={b"loadkit_schema_version": str(SCHEMA_VERSION).encode()},
)


# --- run directories: writers and readers ------------------------------------------------

RUN_META = "run.json"
RECORDS_JSONL = "records.jsonl"
RECORDS_PARQUET = "records.parquet"
CHUNKS_JSONL = "chunks.jsonl"
CHUNK_FIELDS: tuple[str, ...] = (
    "run_id", "worker_id", "user_id", "seq", "batch_id", "attempt", "chunk", "at",
    "offset_ms", "offset_bytes", "bytes", "write_ms", "stall_ms",
)
"""Columns of ``chunks.jsonl``: which batch and stream attempt (1 = first), the chunk's
number in that attempt (0-based), ``at`` (epoch seconds it was handed to the transport),
``offset_ms`` (ms from the attempt's start), ``offset_bytes`` (body bytes before it),
``bytes`` (its size), ``write_ms`` (how long its write took to be accepted) and ``stall_ms``
(how much of that it waited on the target: its stall; empty in runs before schema 3)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; once the body has written it, fsync it,
    rename it over ``path`` and fsync the folder. Whole file or nothing: on any failure the
    temporary file is removed, ``path`` keeps its previous content and
    :class:`RecordsError` says which file could not be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise RecordsError(f"cannot write {path}: {exc.strerror or exc}") from None
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically: a temporary file in the same
    folder, fsync, rename, fsync of the folder. The one atomic writer of loadkit's files
    (``run.json``, ``records.parquet``, reports, ``thresholds.txt``); raises
    :class:`RecordsError` on failure, leaving any previous file in place."""
    path = Path(path)
    with _replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def create_run_dir(results_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Make ``results_dir/run_id/`` and prove it is writable, or raise :class:`RecordsError`.

    Called at start-up so that an unwritable or full results directory fails loudly before
    any load is sent, not silently at the end.
    """
    run_dir = Path(results_dir) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".write-test"
        with open(probe, "wb") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except FileExistsError:
        raise RecordsError(
            f"results folder {run_dir} already exists; choose another --run-id or results dir"
        ) from None
    except OSError as exc:
        raise RecordsError(
            f"cannot write to results directory {Path(results_dir)}: "
            f"{exc.strerror or exc}; pass a writable --results-dir"
        ) from None
    return run_dir


def write_run_meta(run_dir: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """Write ``run.json`` atomically (temporary file + ``os.replace``).

    ``schema_version`` is added when missing. Callers pass options already redacted: no
    option holds a secret key (the key lives only in the environment).
    """
    data = {"schema_version": SCHEMA_VERSION, **meta}
    atomic_write(Path(run_dir) / RUN_META,
                  orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                               default=str) + b"\n")


def read_run_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``run.json`` as a dict (:class:`RecordsError` when missing or unreadable)."""
    path = Path(run_dir) / RUN_META
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise RecordsError(f"{path} not found: is {run_dir} a loadkit run directory?") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RecordsError(f"cannot read {path}: {exc}") from None


class RecordWriter:
    """Crash-safe, append-only writer of ``records.jsonl``.

    Rows are buffered in memory and appended (one JSON object per line) with flush and
    ``fsync`` whenever :meth:`flush_if_due` finds the last flush ``flush_interval`` seconds
    ago, on :meth:`flush` and on :meth:`close`. A process killed at any moment leaves a file
    whose complete lines are all valid records; at most the last (torn) line is lost, and
    :func:`read_records` skips it. :meth:`write` calls :meth:`flush_if_due` itself; a run
    that may go quiet also calls it from a timer (the locust adapter does, twice a second).
    """

    def __init__(self, path: str | os.PathLike[str], flush_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.count = 0
        self._buffer: list[bytes] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        try:
            self._fh: Any = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordsError(f"cannot open {self.path}: {exc.strerror or exc}") from None

    def write(self, record: BatchRecord | Mapping[str, Any]) -> None:
        self.write_many((record,))

    def write_many(self, records: Iterable[BatchRecord | Mapping[str, Any]]) -> None:
        # a plain dict (every row of a run) is dumped as it is, without a copy;
        # dumps(...) + b"\n" is faster than orjson's OPT_APPEND_NEWLINE here (orjson 3.13)
        lines = [
            orjson.dumps(r if type(r) is dict else
                         r.as_dict() if isinstance(r, BatchRecord) else dict(r)) + b"\n"
            for r in records
        ]
        with self._lock:
            self._buffer.extend(lines)
            self.count += len(lines)
        self.flush_if_due()

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._last_flush = time.monotonic()
            if self._fh is None or not self._buffer:
                return
            data, self._buffer = b"".join(self._buffer), []
            try:
                self._fh.write(data)
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise RecordsError(
                    f"cannot append to {self.path}: {exc.strerror or exc}"
                ) from None

    def close(self) -> None:
        if self._fh is None:
            return
        self.flush()
        with self._lock:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def torn_tail(path: str | os.PathLike[str]) -> int:
    """Bytes of a torn (incomplete, not JSON) last line of a JSONL file, 0 when it ends
    cleanly: what :func:`read_jsonl` skips."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - (1 << 20)))
        tail = fh.read()
    last = tail[tail.rfind(b"\n") + 1:]
    if not last.strip():
        return 0
    try:
        orjson.loads(last)
    except orjson.JSONDecodeError:
        return len(last)
    return 0


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``records.jsonl``; a torn (incomplete) last line is skipped.

    A bad line anywhere else means the file is not what loadkit writes:
    :class:`RecordsError` names the line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordsError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    rows: list[dict[str, Any]] = []
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            if number == last:  # no newline after it: torn by a crash mid-write
                break
            raise RecordsError(f"{path}: line {number + 1} is not a JSON record") from None
    return rows


def records_table(rows: Iterable[BatchRecord | Mapping[str, Any]]) -> pa.Table:
    """Rows as a pyarrow Table with :data:`ARROW_SCHEMA` (fields missing from a row are null)."""
    dicts = [r.as_dict() if isinstance(r, BatchRecord) else r for r in rows]
    return pa.Table.from_pylist(dicts, schema=ARROW_SCHEMA)


def write_parquet(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``records.parquet`` from ``records.jsonl`` (atomically, as :func:`atomic_write`)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    run_dir = Path(run_dir)
    jsonl = run_dir / RECORDS_JSONL
    table = records_table(read_jsonl(jsonl) if jsonl.exists() else [])
    path = run_dir / RECORDS_PARQUET
    with _replacing(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_records(run_dir: str | os.PathLike[str]) -> pa.Table:
    """A run's records as a pyarrow Table with :data:`ARROW_SCHEMA`.

    Reads ``records.parquet`` when the run finished, else ``records.jsonl`` (a killed run),
    skipping a torn last line. ``table.to_pandas()`` gives the DataFrame.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415

    run_dir = Path(run_dir)
    parquet = run_dir / RECORDS_PARQUET
    if parquet.exists():
        try:
            return pq.read_table(parquet, schema=ARROW_SCHEMA)
        except (OSError, pa.ArrowException) as exc:
            raise RecordsError(f"cannot read {parquet}: {exc}") from None
    jsonl = run_dir / RECORDS_JSONL
    if jsonl.exists():
        try:
            return records_table(read_jsonl(jsonl))
        except (pa.ArrowException, TypeError) as exc:
            raise RecordsError(f"{jsonl} does not match the record schema: {exc}") from None
    if not run_dir.is_dir():
        raise RecordsError(f"{run_dir} is not a directory")
    raise RecordsError(f"{run_dir} holds no {RECORDS_PARQUET} or {RECORDS_JSONL}")
