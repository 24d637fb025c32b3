"""Internal: one run's directory while the run goes on, and its closing.

``<results-dir>/<run-id>/`` holds ``run.json`` (written at the start and again at the end),
``records.jsonl`` (appended, flushed at least every second), ``chunks.jsonl`` with
``--keep-chunk-timings true`` and, at the end, ``records.parquet``. A :class:`Recording` is
owned by the process that owns the run (the local runner or the master) and lives from the
start of a run to its end.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import gevent

from loadkit import records as rec
from loadkit.errors import RecordsError
from loadkit.thresholds import Threshold, check_thresholds
from loadkit.vocabulary import ExitCode

__all__ = ["FLUSH_EVERY", "Recording"]

FLUSH_EVERY = 0.5
"""Seconds between the timer's checks whether the writers are due a flush."""

log = logging.getLogger("loadkit")


class Recording:
    """The files of one run: records and chunk timings written as they come, closed at the end.

    A record that cannot be written (disk full, folder gone) is reported once through
    ``on_write_error`` and no more are written: the run then stops with the reason. Chunk
    timings are optional: when they cannot be written a log line says so and they stop.
    """

    def __init__(self, run_id: str, run_dir: Path, meta: dict[str, Any],
                 on_write_error: Callable[[RecordsError], None]) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.meta = meta
        """What run.json holds; completed by :meth:`finish`."""
        self.writer: rec.RecordWriter | None = None
        self.chunk_writer: rec.RecordWriter | None = None
        self.write_error: str | None = None
        self.finished = False
        self.summary = ""
        """The ``loadkit summary`` block, set by :meth:`finish`; printed after locust's own
        tables (the ``quit`` event)."""
        self.table: Any = None
        """The run's records as written (a pyarrow Table), once :meth:`finish` read them back."""
        self._on_write_error = on_write_error

    @classmethod
    def open(cls, run_id: str, run_dir: Path, meta: dict[str, Any], *, keep_chunks: bool,
             on_write_error: Callable[[RecordsError], None]) -> Recording:
        """Write run.json, open the writers and start flushing them on a timer.

        Raises :class:`RecordsError` when a file cannot be written.
        """
        recording = cls(run_id, run_dir, meta, on_write_error)
        rec.write_run_meta(run_dir, meta)
        recording.writer = rec.RecordWriter(run_dir / rec.RECORDS_JSONL)
        if keep_chunks:
            recording.chunk_writer = rec.RecordWriter(run_dir / rec.CHUNKS_JSONL)
            gevent.spawn(recording._flush_chunks_loop)
        gevent.spawn(recording._flush_loop)
        return recording

    # -- during the run -------------------------------------------------------------------

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append batch records to records.jsonl (nothing once a write has failed)."""
        if self.writer is not None and self.write_error is None:
            try:
                self.writer.write_many(records)
            except RecordsError as exc:
                self._failed(exc)

    def write_chunks(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append per-chunk timing rows to chunks.jsonl (when they are kept)."""
        if self.chunk_writer is not None and rows:
            try:
                self.chunk_writer.write_many(rows)
            except RecordsError as exc:
                log.error("loadkit: %s; no more chunk timings are written", exc)
                self.chunk_writer = None

    def flush(self) -> None:
        """Flush records.jsonl now (at the end of a test)."""
        if self.writer is not None and self.write_error is None:
            try:
                self.writer.flush()
            except RecordsError as exc:
                self._failed(exc)

    def _failed(self, exc: RecordsError) -> None:
        if self.write_error is not None:
            return
        self.write_error = str(exc)
        self._on_write_error(exc)

    def _flush_loop(self) -> None:
        while not self.finished:
            gevent.sleep(FLUSH_EVERY)
            if self.writer is not None and self.write_error is None:
                try:
                    self.writer.flush_if_due()
                except RecordsError as exc:
                    self._failed(exc)

    def _flush_chunks_loop(self) -> None:
        while not self.finished and self.chunk_writer is not None:
            gevent.sleep(FLUSH_EVERY)
            try:
                self.chunk_writer.flush_if_due()
            except (RecordsError, AttributeError):  # the writer failed or was closed meanwhile
                return

    # -- the end --------------------------------------------------------------------------

    def finish(self, *, thresholds: Sequence[Threshold], aborted: str | None,
               extra_meta: dict[str, Any] | None = None,
               baseline: Path | None = None) -> int | None:
        """Close the records, write Parquet and the final run.json, check the thresholds
        and, with ``baseline``, gate the run against it (:func:`loadkit.regression.gate`).

        Prints the threshold table (stdout) and a one-line summary (stderr). Returns the exit
        code the run's end decides, or None to leave locust's own.
        """
        self.finished = True
        if self.chunk_writer is not None:
            with contextlib.suppress(RecordsError):
                self.chunk_writer.close()
        code: int | None = None
        self._close_writer()
        table = None
        try:
            rec.write_parquet(self.run_dir)
            table = self.table = rec.read_records(self.run_dir)
        except RecordsError as exc:
            sys.stderr.write(f"loadkit: error: {exc}\n")
            code = ExitCode.CONFIG.value
        self.meta.update(extra_meta or {})
        outcomes = Counter(table.column("outcome").to_pylist()) if table is not None else Counter()
        self.meta.update(
            ended_at=time.time(),
            records=sum(outcomes.values()),
            outcomes=dict(outcomes),
            aborted=aborted,
        )
        mode = str((self.meta.get("options") or {}).get("summary") or "full")
        check = None
        if thresholds and table is not None:
            if mode == "none":  # no summary block: the thresholds table as before
                sys.stdout.write("\n")
            check = check_thresholds(thresholds, table,
                                     out=sys.stdout if mode == "none" else None)
            self.meta["thresholds"] = check.as_meta()
            code = check.exit_code.value
        if table is not None and mode != "none":
            self.summary = _summary(table, self.meta, check, mode)
        if baseline is not None and table is not None:
            code = self._gate(baseline, code)
        if aborted:
            sys.stderr.write(f"loadkit: run stopped early: {aborted}\n")
            code = ExitCode.ABORTED.value
        if self.write_error is not None:
            code = ExitCode.CONFIG.value
        self.meta["write_error"] = self.write_error
        self.meta["exit_code"] = code
        try:
            rec.write_run_meta(self.run_dir, self.meta)
        except RecordsError as exc:
            sys.stderr.write(f"loadkit: error: {exc}\n")
        sys.stderr.write(
            f"loadkit: run {self.run_id}: {sum(outcomes.values())} records "
            f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())) or 'none'}) "
            f"in {self.run_dir}\n"
        )
        return code

    def _gate(self, baseline: Path, code: int | None) -> int | None:
        """Gate the run against ``baseline``: print the table, record it, decide the code."""
        from loadkit.errors import LoadkitError  # noqa: PLC0415
        from loadkit.regression import gate  # noqa: PLC0415 - pandas only for a gated run

        try:
            result = gate(self.run_dir, baseline)
        except LoadkitError as exc:
            sys.stderr.write(f"loadkit: error: baseline {baseline}: {exc}\n")
            return ExitCode.CONFIG.value
        sys.stdout.write("\n" + result.table + "\n")
        sys.stdout.flush()
        self.meta["regression"] = result.as_meta()
        if not result.passed:
            return ExitCode.THRESHOLDS_FAILED.value
        return ExitCode.OK.value if code is None else code

    def print_summary(self) -> None:
        """Print the summary block to stdout (once)."""
        if self.summary:
            sys.stdout.write("\n" + self.summary + "\n")
            sys.stdout.flush()
            self.summary = ""

    def _close_writer(self) -> None:
        if self.writer is None:
            return
        try:
            if self.write_error is None:
                self.writer.close()
            else:
                with contextlib.suppress(OSError, RecordsError):
                    self.writer.close()
        except RecordsError as exc:
            self.write_error = str(exc)
            sys.stderr.write(f"loadkit: error: {exc}; the records of this run are incomplete\n")


def _summary(table: Any, meta: dict[str, Any], check: Any, mode: str) -> str:
    """The summary block; a failure to compute it is logged, never the run's end."""
    from loadkit.summary import summary_text, threshold_lines  # noqa: PLC0415

    try:
        return summary_text(table, meta, mode=mode,
                            thresholds=threshold_lines(check.results) if check else None)
    except Exception as exc:  # the records and the exit code matter more than the block
        log.error("loadkit: cannot write the summary: %s", exc)
        return ""
