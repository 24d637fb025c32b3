"""Turn a run directory into pandas DataFrames and answers (pandas only; no plotting here).

::

    import loadkit
    run = loadkit.load_run("results/20250101-120000-ab12")
    run.summary()                 # Series: batches, items, bytes, duration, rates, violations
    run.latency()                 # DataFrame: p50 … p99.9, max of create/stream/total
    run.throughput("1s")          # DataFrame: items/s, batches/s, MB/s, errors per bucket
    run.batches                   # the typed records, one row per batch

Every function here takes a :class:`Run` or a records DataFrame (``run.batches``) as its
first argument; the :class:`Run` methods are the same functions.

Definitions (one place, :func:`loadkit.thresholds.run_metrics`, so notebooks, reports and
thresholds agree):

- ``batches`` are all records except ``dropped`` ones (open model: a scheduled start that
  was never served); every figure below except ``dropped`` is over those;
- ``sealed`` = outcome ``sealed`` or ``cached`` (an idempotent replay of a sealed batch);
  ``seal_rate`` = sealed ÷ batches; ``failed`` = outcome ``failed`` or ``not_sealed``;
  ``error_rate`` = failed ÷ batches — the same definitions as :mod:`loadkit.thresholds`;
- ``items`` = items the server accepted (``items_accepted``, all streams); ``bytes`` = bytes
  sent; ``duration_s`` = first actual start to last end (``nan`` with no batches); rates
  divide by it;
- percentiles are exact: computed from every recorded value (no histogram, no sampling),
  linearly interpolated between the closest ranks (numpy's default, as the thresholds);
- time buckets use each batch's end (``ended_at``): a batch's items count when it finished.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loadkit.errors import RecordsError
from loadkit.metrics import run_metrics
from loadkit.records import (
    ARROW_SCHEMA,
    CHUNK_FIELDS,
    CHUNKS_JSONL,
    FIELD_NAMES,
    OUTCOMES,
    RECORDS_JSONL,
    RECORDS_PARQUET,
    RUN_META,
    SCHEMA_VERSION,
    read_jsonl,
    read_records,
    read_run_meta,
    records_table,
    torn_tail,
)
from loadkit.vocabulary import FAILURE_OUTCOMES, FAULT_KINDS, SUCCESS_OUTCOMES

if TYPE_CHECKING:
    from loadkit.thresholds import ThresholdCheck

__all__ = [
    "CHUNK_FILES",
    "FAULT_KINDS",
    "LATENCY_METRICS",
    "PERCENTILES",
    "Run",
    "backpressure",
    "breakdown",
    "by_task",
    "by_worker",
    "chunk_timeline",
    "compare",
    "crosscheck",
    "dedupe",
    "latency",
    "latency_over_time",
    "latest_run",
    "load_run",
    "parse_resolution",
    "percentile",
    "rate_limiting",
    "seal_causes",
    "seal_outcomes",
    "stall_by_size",
    "stall_distribution",
    "summary",
    "throughput",
    "window",
]

CHUNK_FILES = ("chunks.parquet", CHUNKS_JSONL)
"""Per-chunk write timings, when the run kept them (``keep_chunk_timings``: the locust
adapter appends ``chunks.jsonl``; columns :data:`loadkit.records.CHUNK_FIELDS`)."""

PERCENTILES: tuple[float, ...] = (50, 90, 95, 99, 99.9)
LATENCY_METRICS: dict[str, str] = {
    "create": "create_ms",
    "stream": "stream_ms",
    "total": "total_ms",
    "total_from_intended": "total_from_intended_ms",
}
"""Row label → record column; ``total`` is from the actual start, ``total_from_intended``
from the intended start (open model; the coordinated-omission-aware figure)."""

_CATEGORICAL = ("run_id", "worker_id", "error_kind", "ratelimit_reset_unit")
TIME_COLUMNS = {"intended_time": "intended_at", "started_time": "started_at",
                "ended_time": "ended_at"}
"""Derived ``datetime64[us, UTC]`` columns → the epoch-seconds field they come from."""


# --- loading -----------------------------------------------------------------------------


@dataclass(eq=False)
class Run:
    """One load run: ``batches`` (typed records, one row per batch), ``meta`` (run.json).

    ``source`` says which file the records came from (``records.parquet`` once the run
    ended, ``records.jsonl`` for a running or killed run). The methods are the module's
    functions applied to this run.
    """

    path: Path
    meta: dict[str, Any]
    batches: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    """What the loader had to work around (each was also issued as a warning)."""
    exit_code: int | None = None
    """Set by :func:`loadkit.run`: locust's exit code (0 ok, 3 a threshold failed …)."""
    log: Path | None = None
    """Set by :func:`loadkit.run`: locust's log file."""
    interrupted: bool = False
    """Set by :func:`loadkit.run`: the run was stopped by an interrupt before its end."""

    @property
    def run_id(self) -> str:
        rid = self.meta.get("run_id")
        if rid:
            return str(rid)
        if len(self.batches) and "run_id" in self.batches:
            return str(self.batches["run_id"].iloc[0])
        return self.path.name

    @property
    def options(self) -> dict[str, Any]:
        """The run's options as recorded in run.json (secret key already redacted there)."""
        opts = self.meta.get("options")
        return dict(opts) if isinstance(opts, dict) else {}

    def __repr__(self) -> str:
        return self.summary_text()

    def summary_text(self, mode: str = "full") -> str:
        """The ``loadkit summary`` block of this run (``full`` or ``short``), as printed at
        the end of a run; its thresholds are the run's own, evaluated over these records."""
        from loadkit.summary import summary_text  # noqa: PLC0415

        meta = {**self.meta, "run_id": self.run_id}
        return summary_text(self.batches, meta, thresholds=_threshold_lines(self),
                            mode=mode, notes=self.notes)

    def _repr_html_(self) -> str:
        """Jupyter: the verdict and the headline figures first (the summary's numbers)."""
        from loadkit.report import headline_html  # noqa: PLC0415

        return headline_html(self)

    def reload(self) -> Run:
        """Read the run directory again (a run still going on has more records now)."""
        return load_run(self.path)

    def summary(self) -> pd.Series:
        return summary(self)

    def latency(self, percentiles: Sequence[float] = PERCENTILES) -> pd.DataFrame:
        return latency(self, percentiles)

    def latency_over_time(self, resolution: str | float = "1s", metric: str = "total_ms",
                          percentiles: Sequence[float] = (50, 95, 99)) -> pd.DataFrame:
        return latency_over_time(self, resolution, metric, percentiles)

    def throughput(self, resolution: str | float = "1s") -> pd.DataFrame:
        return throughput(self, resolution)

    def backpressure(self) -> pd.Series:
        return backpressure(self)

    def stall_distribution(self, bins: int = 10) -> pd.DataFrame:
        return stall_distribution(self, bins)

    def stall_by_size(self, by: str = "run_count", bins: int = 5) -> pd.DataFrame:
        return stall_by_size(self, by, bins)

    def chunk_timeline(self) -> pd.DataFrame:
        return chunk_timeline(self)

    def window(self, start: float | None = None, end: float | None = None) -> Run:
        return window(self, start, end)

    def dedupe(self) -> pd.DataFrame:
        return dedupe(self)

    def seal_outcomes(self) -> pd.DataFrame:
        return seal_outcomes(self)

    def seal_causes(self) -> pd.DataFrame:
        return seal_causes(self)

    def rate_limiting(self) -> pd.Series:
        return rate_limiting(self)

    def breakdown(self, by: str | list[str]) -> pd.DataFrame:
        return breakdown(self, by)

    def by_worker(self) -> pd.DataFrame:
        return by_worker(self)

    def by_task(self) -> pd.DataFrame:
        return by_task(self)

    def crosscheck(self) -> pd.DataFrame | None:
        return crosscheck(self)

    def to_csv(self, path: str | Path | None = None, *, chunks: bool = False) -> list[Path]:
        """Write the records (and chunk rows) as CSV (:func:`loadkit.export.export_run`)."""
        return self._export("csv", path, chunks)

    def to_parquet(self, path: str | Path | None = None, *, chunks: bool = False) -> list[Path]:
        return self._export("parquet", path, chunks)

    def to_jsonl(self, path: str | Path | None = None, *, chunks: bool = False) -> list[Path]:
        return self._export("jsonl", path, chunks)

    def _export(self, fmt: str, path: str | Path | None, chunks: bool) -> list[Path]:
        from loadkit.export import export_run  # noqa: PLC0415

        done = export_run(self.path, fmt, path, chunks=chunks)
        for note in done.notes:
            warnings.warn(note, stacklevel=3)
        return done.paths

    def compare(self, other: Run | pd.DataFrame) -> pd.DataFrame:
        return compare(self, other)

    def assert_thresholds(self, *exprs: str) -> ThresholdCheck:
        """Check threshold expressions over this run's records (``"p95(total_ms) < 500"``,
        ``"seal_rate >= 0.999"``; each string may hold several separated by ``;``) with
        :func:`loadkit.thresholds.check_thresholds`, as ``loadkit check`` does.

        Raises :class:`AssertionError` whose message is the thresholds table when any fails;
        returns the :class:`~loadkit.thresholds.ThresholdCheck` when all pass. A malformed
        expression raises :class:`~loadkit.errors.ThresholdError`; none at all, too.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not this method's source
        from loadkit.errors import ThresholdError  # noqa: PLC0415
        from loadkit.thresholds import check_thresholds, threshold_texts  # noqa: PLC0415

        texts = threshold_texts(list(exprs))
        if not texts:
            raise ThresholdError("assert_thresholds() needs at least one expression, e.g. "
                                 "'p95(total_ms) < 500'")
        check = check_thresholds(texts, self.batches)
        if not check.passed:
            raise AssertionError(check.table)
        return check


def _threshold_lines(run: Run) -> list[Any]:
    """The run's own thresholds (run.json options) evaluated over its records."""
    from loadkit.summary import threshold_lines  # noqa: PLC0415
    from loadkit.thresholds import evaluate, threshold_texts  # noqa: PLC0415

    texts = threshold_texts(run.options.get("threshold") or run.options.get("thresholds"))
    try:
        return threshold_lines(evaluate(texts, run.batches)) if texts else []
    except ValueError:  # a threshold this loadkit does not parse (another version's)
        return []


def latest_run(results_dir: str | Path = "results") -> Path:
    """The most recent run directory under ``results_dir`` (run ids sort by start time)."""
    root = Path(results_dir).expanduser()
    runs = sorted(p for p in root.iterdir() if p.is_dir() and (p / RUN_META).exists()) \
        if root.is_dir() else []
    if not runs:
        raise RecordsError(f"{root} holds no run directories; start a run first "
                           "(loadkit.run(...) or locust -f \"$(loadkit locustfile)\")")
    return max(runs, key=lambda p: ((p / RUN_META).stat().st_mtime, p.name))


def load_run(path: str | Path) -> Run:
    """Load one run directory: records from Parquet, else from the crash-safe JSONL.

    Reading is :func:`loadkit.records.read_records` (and ``read_run_meta``); this adds the
    typed DataFrame and best-effort handling. Raises :class:`RecordsError` when ``path`` is
    not a run directory or its records cannot be read; warns (and loads what it can) for a
    torn last line, a missing or unreadable ``run.json``, a run with no batches, a damaged
    Parquet file next to its JSONL, or records from another schema version.
    """
    run_dir = Path(path).expanduser()
    if not run_dir.exists():
        raise RecordsError(f"{run_dir}: no such directory; pass the folder of one run, "
                           "e.g. results/<run_id>")
    if run_dir.is_file():
        if run_dir.name in (RUN_META, RECORDS_JSONL, RECORDS_PARQUET):
            run_dir = run_dir.parent
        else:
            raise RecordsError(f"{run_dir} is a file, not a run directory; pass the folder "
                               f"holding {RUN_META} and {RECORDS_PARQUET} or {RECORDS_JSONL}")
    parquet, jsonl = run_dir / RECORDS_PARQUET, run_dir / RECORDS_JSONL
    if not (parquet.exists() or jsonl.exists() or (run_dir / RUN_META).exists()):
        runs = sorted(p.name for p in run_dir.iterdir()
                      if p.is_dir() and ((p / RUN_META).exists() or (p / RECORDS_JSONL).exists()))
        hint = (f"; it holds {len(runs)} run(s), e.g. {run_dir / runs[-1]}" if runs else
                "; pass the folder of one run, e.g. results/<run_id>")
        raise RecordsError(f"{run_dir} is not a loadkit run directory (no {RUN_META}, "
                           f"{RECORDS_PARQUET} or {RECORDS_JSONL}){hint}")
    notes: list[str] = []
    try:
        meta = read_run_meta(run_dir)
        if not isinstance(meta, dict):
            raise RecordsError(f"{run_dir / RUN_META} is not a JSON object")
    except RecordsError as exc:
        _note(notes, f"{exc}; loading the records without run metadata")
        meta = {}

    if parquet.exists() or jsonl.exists():
        try:
            table = read_records(run_dir)
            source = RECORDS_PARQUET if parquet.exists() else RECORDS_JSONL
        except RecordsError as exc:
            if not (parquet.exists() and jsonl.exists()):
                raise
            _note(notes, f"{exc}; loaded {RECORDS_JSONL} instead")
            table, source = records_table(read_jsonl(jsonl)), RECORDS_JSONL
        if source == RECORDS_JSONL:
            _check_torn(jsonl, notes)
    else:
        _note(notes, f"{run_dir} has {RUN_META} but no records yet "
                     f"({RECORDS_JSONL}/{RECORDS_PARQUET}): the run recorded no batches")
        table, source = ARROW_SCHEMA.empty_table(), "none"

    version = _schema_version(meta, parquet if source == RECORDS_PARQUET else None)
    if version is not None and version != SCHEMA_VERSION:
        relation = "older" if version < SCHEMA_VERSION else "newer"
        whole_writes = (" Before schema 3, stall_ms held whole write times (the cost of "
                        "writing included; now stall is only the wait on the target): they "
                        "fill write_ms too, compare them with newer runs' write_ms."
                        if version < 3 else "")
        _note(notes, f"{run_dir}: records use schema version {version}, {relation} than "
                     f"this loadkit's {SCHEMA_VERSION}; loaded best-effort.{whole_writes}")
    batches = _to_frame(table, notes, str(run_dir))
    if version is not None and version < 3 and len(batches) and batches["write_ms"].isna().all():
        batches["write_ms"] = batches["stall_ms"]
    if len(batches) == 0 and source != "none":
        _note(notes, f"{run_dir}: the run has no batch records (it ended before any batch "
                     "finished)")
    return Run(path=run_dir, meta=meta, batches=batches, source=source, notes=notes)


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    warnings.warn(text, stacklevel=3)


def _check_torn(jsonl: Path, notes: list[str]) -> None:
    """Warn when the file ends in a torn line (which the reader skipped)."""
    torn = torn_tail(jsonl)
    if torn:
        _note(notes, f"{jsonl}: skipped a torn last line ({torn} bytes; the run was stopped "
                     "mid-write)")


def _schema_version(meta: dict[str, Any], parquet: Path | None) -> int | None:
    """The records' schema version: run.json's, else the Parquet footer's, else None."""
    raw = meta.get("schema_version")
    if raw is None and parquet is not None:
        try:
            footer = pq.read_schema(parquet).metadata or {}
        except (OSError, pa.ArrowException):
            footer = {}
        raw = footer.get(b"loadkit_schema_version")
        raw = raw.decode() if raw is not None else None
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return -1


def _to_frame(table: pa.Table, notes: list[str], where: str) -> pd.DataFrame:
    """Conform ``table`` to the record schema and convert it to a typed DataFrame."""
    names = set(table.column_names)
    missing = [n for n in FIELD_NAMES if n not in names or (
        table.num_rows and not ARROW_SCHEMA.field(n).nullable
        and table.column(n).null_count == table.num_rows)]
    if missing and table.num_columns:
        _note(notes, f"{where}: records lack {len(missing)} field(s) of schema version "
                     f"{SCHEMA_VERSION} ({', '.join(missing[:6])}"
                     f"{' …' if len(missing) > 6 else ''}); they are left empty")
    n = table.num_rows
    cols: dict[str, Any] = {}
    for name in FIELD_NAMES:
        target = ARROW_SCHEMA.field(name)
        col = table.column(name) if name in names else pa.nulls(n, target.type)
        if not col.type.equals(target.type):
            try:
                col = col.cast(target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RecordsError(f"{where}: field {name!r} holds {col.type} values that "
                                   f"are not {target.type} ({exc})") from exc
        cols[name] = _column(name, col, target)
    extra = [c for c in table.column_names if c not in FIELD_NAMES]
    for name in extra:  # newer schema: keep what we do not know, as pandas sees it
        cols[name] = table.column(name).to_pandas()
    frame = pd.DataFrame(cols, copy=False)
    for derived, source in TIME_COLUMNS.items():
        frame[derived] = _utc(frame[source].to_numpy(dtype=float))
    return frame


def _utc(epoch_s: np.ndarray) -> pd.Series:
    """Epoch seconds → ``datetime64[us, UTC]`` (NaN → NaT); microseconds match the precision
    of a float epoch, and this is ~10× faster than ``pd.to_datetime(unit="s")``."""
    us = np.round(epoch_s * 1e6)
    ints = np.where(np.isnan(us), np.iinfo(np.int64).min, us).astype(np.int64)
    return pd.Series(ints.view("M8[us]"), copy=False).dt.tz_localize("UTC")


def _column(name: str, col: pa.ChunkedArray, target: pa.Field) -> Any:
    has_nulls = col.null_count > 0
    if name == "outcome":  # categories in OUTCOMES order, so counts list every outcome
        enc = col.combine_chunks().dictionary_encode()
        seen = enc.dictionary.to_pylist()
        if not set(seen) <= set(OUTCOMES):
            return enc.to_pandas()  # unknown outcomes (a newer schema): keep them as found
        remap = np.array([OUTCOMES.index(v) for v in seen] + [-1], dtype=np.int8)
        codes = enc.indices.fill_null(len(seen)).to_numpy()
        return pd.Categorical.from_codes(remap[codes], categories=list(OUTCOMES))
    if name in _CATEGORICAL:
        return col.dictionary_encode().to_pandas()
    kind = target.type
    if pa.types.is_integer(kind):
        if target.nullable or has_nulls:
            return col.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return col.to_numpy()
    if pa.types.is_boolean(kind):
        if target.nullable or has_nulls:
            return col.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        return col.to_numpy()
    if pa.types.is_floating(kind):
        return col.to_numpy() if not has_nulls else col.to_pandas().to_numpy()
    return col.to_pandas()


# --- helpers -----------------------------------------------------------------------------


def _frame(run: Run | pd.DataFrame) -> pd.DataFrame:
    if isinstance(run, Run):
        return run.batches
    if isinstance(run, pd.DataFrame):
        missing = set(FIELD_NAMES).difference(run.columns)
        if missing:
            names = ", ".join(sorted(missing)[:5]) + (" …" if len(missing) > 5 else "")
            raise RecordsError(f"the DataFrame lacks record columns ({names}); pass "
                               "run.batches or the Run from load_run()")
        return run
    raise TypeError(f"expected a loadkit Run or a records DataFrame, got {type(run).__name__}")


def _label(run: Run | pd.DataFrame, default: str) -> str:
    if isinstance(run, Run):
        return run.run_id
    if len(run) and "run_id" in run:
        return str(run["run_id"].iloc[0])
    return default


def _sent(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["outcome"] != "dropped"] if len(df) else df


def parse_resolution(resolution: str | float | pd.Timedelta) -> float:
    """A time bucket in seconds from ``0.5``, ``"2"``, ``"500ms"``, ``"1min"`` or a Timedelta;
    ValueError when it is not a positive duration."""
    try:
        if isinstance(resolution, bool):
            raise TypeError
        if isinstance(resolution, (int, float)):
            seconds = float(resolution)
        else:
            try:
                seconds = float(resolution)
            except (TypeError, ValueError):
                seconds = pd.Timedelta(resolution).total_seconds()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"resolution: {resolution!r} is not a duration; give seconds (0.5) "
                         "or a pandas duration ('1s', '500ms', '1min')") from exc
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"resolution: {resolution!r} must be a positive duration")
    return seconds


def _pct_label(p: float) -> str:
    return f"p{p:g}"


def percentile(values: Iterable[float] | pd.Series | np.ndarray, p: float) -> float:
    """Percentile ``p`` (0–100) of ``values`` ignoring NaN, linearly interpolated between the
    closest ranks (numpy's default, as :mod:`loadkit.thresholds`); NaN when empty."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.percentile(v, p)) if v.size else math.nan


def _percentiles(v: np.ndarray, ps: Sequence[float]) -> dict[str, float]:
    v = v[~np.isnan(v)]
    if not v.size:
        return {_pct_label(p): math.nan for p in ps} | {"max": math.nan}
    got = np.percentile(v, [*ps, 100.0])
    return {_pct_label(p): float(x) for p, x in zip(ps, got[:-1], strict=True)} | {
        "max": float(got[-1])}


def _group_percentiles(keys: np.ndarray, values: np.ndarray,
                       ps: Sequence[float]) -> pd.DataFrame:
    """Percentiles of ``values`` per distinct key (NaN values left out), interpolated as
    :func:`percentile`; vectorised: one sort for all groups."""
    ok = ~np.isnan(values)
    keys, values = keys[ok], values[ok]
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    uniq, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    out = {}
    for p in ps:
        pos = (counts - 1) * (p / 100.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, counts - 1)
        a, b = values[starts + lo], values[starts + hi]
        out[_pct_label(p)] = a + (b - a) * (pos - lo)
    out["max"] = values[starts + counts - 1]
    return pd.DataFrame(out, index=uniq)


def _float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=np.nan)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


# --- answers -----------------------------------------------------------------------------


def summary(run: Run | pd.DataFrame) -> pd.Series:
    """The run in one Series: counts, sizes, duration, rates, errors, seals, violations.

    The figures are :func:`loadkit.thresholds.run_metrics` (one definition: a threshold,
    the report and a notebook agree); an empty run has ``duration_s`` and rates ``nan``.
    """
    return pd.Series(run_metrics(_frame(run)), name=_label(run, "run"), dtype=object)


def latency(run: Run | pd.DataFrame,
            percentiles: Sequence[float] = PERCENTILES) -> pd.DataFrame:
    """Exact latency percentiles (ms) of create, stream and total, with count and mean.

    ``total`` counts from the actual start, ``total_from_intended`` from the intended start
    (open model only: in the closed model that row has count 0 and NaN figures).
    """
    df = _sent(_frame(run))
    rows = {}
    for label, column in LATENCY_METRICS.items():
        v = _float(df[column])
        valid = v[~np.isnan(v)]
        rows[label] = {"count": int(valid.size),
                       "mean": float(valid.mean()) if valid.size else math.nan,
                       **_percentiles(v, percentiles)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "latency_ms"
    out["count"] = out["count"].astype("int64")
    return out


def _buckets(df: pd.DataFrame, seconds: float) -> tuple[np.ndarray, float, int]:
    start = float(df["started_at"].min())
    ends = df["ended_at"].to_numpy(dtype=float)
    idx = np.floor((ends - start) / seconds).astype(np.int64)
    idx = np.clip(idx, 0, None)
    return idx, start, int(idx.max()) + 1 if idx.size else 0


def _bucket_index(start: float, seconds: float, n: int) -> tuple[pd.Index, pd.DatetimeIndex]:
    elapsed = pd.Index(np.arange(n) * seconds, name="elapsed_s")
    times = pd.to_datetime(start + elapsed.to_numpy(), unit="s", utc=True)
    return elapsed, times


def throughput(run: Run | pd.DataFrame, resolution: str | float = "1s") -> pd.DataFrame:
    """Per time bucket (by batch end, from the first start): counts and per-second rates.

    Index ``elapsed_s`` (bucket start, seconds since the run's first batch start); columns
    ``time`` (UTC), ``batches``, ``items``, ``bytes``, ``errors``, ``dropped`` and the rates
    ``batches_per_s``, ``items_per_s``, ``mb_per_s``, ``errors_per_s``. Empty buckets are 0.
    """
    seconds = parse_resolution(resolution)
    df = _frame(run)
    cols = ["time", "batches", "items", "bytes", "errors", "dropped",
            "batches_per_s", "items_per_s", "mb_per_s", "errors_per_s"]
    if not len(df):
        return pd.DataFrame(columns=cols, index=pd.Index([], name="elapsed_s", dtype=float))
    idx, start, n = _buckets(df, seconds)
    dropped = (df["outcome"] == "dropped").to_numpy()
    sent = ~dropped
    errors = df["outcome"].isin(FAILURE_OUTCOMES).to_numpy()
    items = np.where(sent, df["items_accepted"].to_numpy(dtype=np.int64), 0)
    nbytes = np.where(sent, df["bytes_sent"].to_numpy(dtype=np.int64), 0)
    elapsed, times = _bucket_index(start, seconds, n)
    out = pd.DataFrame({
        "time": times,
        "batches": np.bincount(idx, weights=sent, minlength=n).astype(np.int64),
        "items": np.bincount(idx, weights=items, minlength=n).astype(np.int64),
        "bytes": np.bincount(idx, weights=nbytes, minlength=n).astype(np.int64),
        "errors": np.bincount(idx, weights=errors, minlength=n).astype(np.int64),
        "dropped": np.bincount(idx, weights=dropped, minlength=n).astype(np.int64),
    }, index=elapsed)
    out["batches_per_s"] = out["batches"] / seconds
    out["items_per_s"] = out["items"] / seconds
    out["mb_per_s"] = out["bytes"] / 1e6 / seconds
    out["errors_per_s"] = out["errors"] / seconds
    return out


def latency_over_time(run: Run | pd.DataFrame, resolution: str | float = "1s",
                      metric: str = "total_ms",
                      percentiles: Sequence[float] = (50, 95, 99)) -> pd.DataFrame:
    """Percentiles of ``metric`` per time bucket (by batch end).

    ``metric`` is a latency column (``create_ms``, ``stream_ms``, ``total_ms``,
    ``total_from_intended_ms``) or a row label of :func:`latency` (``total`` …). Buckets
    without batches are NaN. Columns: ``time``, ``count``, ``p50`` …, ``max``.
    """
    seconds = parse_resolution(resolution)
    column = LATENCY_METRICS.get(metric, metric)
    if column not in LATENCY_METRICS.values():
        raise ValueError(f"metric: {metric!r} is not a latency; use one of "
                         + ", ".join(LATENCY_METRICS.values()))
    df = _sent(_frame(run))
    if not len(df):
        labels = ["time", "count", *map(_pct_label, percentiles), "max"]
        return pd.DataFrame(columns=labels, index=pd.Index([], name="elapsed_s", dtype=float))
    idx, start, n = _buckets(df, seconds)
    values = _float(df[column])
    per = _group_percentiles(idx, values, percentiles).reindex(range(n))
    counts = np.bincount(idx[~np.isnan(values)], minlength=n)
    elapsed, times = _bucket_index(start, seconds, n)
    per.index = elapsed
    per.insert(0, "count", counts)
    per.insert(0, "time", times)
    return per


def backpressure(run: Run | pd.DataFrame) -> pd.Series:
    """How much of the stream time the body's writes waited on the target (streamed batches).

    ``stalled_share`` is total stall time ÷ total stream time; the percentiles are of the
    per-batch ``stall_fraction``. ``write_share`` is the time writes took in all (the kernel's
    copy included) ÷ stream time: what the client side cost, next to what the target made it
    wait (NaN for runs before schema 3, which did not record it).
    """
    df = _frame(run)
    df = df[df["stream_ms"].notna() & (df["stream_ms"] > 0)] if len(df) else df
    frac = _float(df["stall_fraction"])
    pct = _percentiles(frac, (50, 90, 99))
    stall = float(df["stall_ms"].sum())
    stream = float(df["stream_ms"].sum())
    writes = _float(df["write_ms"]) if "write_ms" in df else np.array([])
    write = float(writes.sum()) if writes.size and not np.isnan(writes).any() else math.nan
    out = {
        "batches": len(df),
        "stall_ms": stall,
        "stream_ms": stream,
        "stalled_share": _ratio(stall, stream),
        "write_ms": write,
        "write_share": _ratio(write, stream),
        "stall_fraction_mean": float(np.nanmean(frac)) if frac.size else math.nan,
        **{f"stall_fraction_{k}": v for k, v in pct.items()},
        "max_stall_ms": float(df["max_stall_ms"].max()) if len(df) else math.nan,
        "batches_stalled_over_half": int((frac > 0.5).sum()),
    }
    return pd.Series(out, name=_label(run, "run"), dtype=object)


def stall_distribution(run: Run | pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Histogram of ``stall_fraction`` over ``bins`` equal bins of [0, 1]: batches and share.

    The last bin is closed (holds 1.0); values outside [0, 1] are clipped into the ends.
    """
    df = _frame(run)
    frac = _float(df["stall_fraction"][df["stream_ms"].fillna(0) > 0]) if len(df) else \
        np.array([])
    frac = np.clip(frac[~np.isnan(frac)], 0.0, 1.0)
    counts, edges = np.histogram(frac, bins=bins, range=(0.0, 1.0))
    index = pd.IntervalIndex.from_breaks(np.round(edges, 9), closed="left",
                                         name="stall_fraction")
    out = pd.DataFrame({"batches": counts}, index=index)
    out["share"] = out["batches"] / counts.sum() if counts.sum() else math.nan
    return out


def stall_by_size(run: Run | pd.DataFrame, by: str = "run_count",
                  bins: int = 5) -> pd.DataFrame:
    """Stall fraction against batch size: quantile bins of ``by`` (``run_count``,
    ``payload_bytes`` or ``bytes_sent``) with batches, mean size, mean and p90 stall
    fraction and mean send rate (items/s)."""
    if by not in ("run_count", "payload_bytes", "bytes_sent", "lines_sent"):
        raise ValueError(f"by: {by!r}; use run_count, payload_bytes, bytes_sent or lines_sent")
    df = _frame(run)
    df = df[df["stream_ms"].notna() & (df["stream_ms"] > 0)] if len(df) else df
    cols = ["batches", f"mean_{by}", "stall_fraction_mean", "stall_fraction_p90",
            "send_items_per_s_mean"]
    if not len(df):
        return pd.DataFrame(columns=cols)
    size = df[by].astype(float)
    groups = pd.qcut(size, q=bins, duplicates="drop") if size.nunique() > 1 else \
        pd.Series(pd.Categorical([f"{size.iloc[0]:g}"] * len(df)), index=df.index)
    codes = np.asarray(pd.Categorical(groups).codes)
    grouped = pd.DataFrame({"g": groups, "size": size, "frac": df["stall_fraction"],
                            "rate": df["send_items_per_s"].astype(float)}).groupby(
        "g", observed=True)
    out = pd.DataFrame({
        "batches": grouped.size(),
        f"mean_{by}": grouped["size"].mean(),
        "stall_fraction_mean": grouped["frac"].mean(),
    })
    p90 = _group_percentiles(codes, _float(df["stall_fraction"]), (90,))["p90"]
    out["stall_fraction_p90"] = p90.to_numpy()
    out["send_items_per_s_mean"] = grouped["rate"].mean()
    out.index.name = by
    return out[cols]


def chunk_timeline(run: Run) -> pd.DataFrame:
    """Every body chunk the run wrote, in time order, when it kept per-chunk timings
    (``keep_chunk_timings``: ``chunks.jsonl``, or ``chunks.parquet``); :class:`RecordsError`
    when it did not.

    Columns: :data:`loadkit.records.CHUNK_FIELDS` (``stall_ms`` is the chunk's stall, ``write_ms``
    its whole write) plus
    ``time`` (UTC) and ``elapsed_s`` (seconds since the run's first batch start, else since
    the first chunk). A torn last line of a killed run is skipped.
    """
    if not isinstance(run, Run):
        raise TypeError("chunk_timeline needs a Run (the timings live in the run directory)")
    for name in CHUNK_FILES:
        path = run.path / name
        if path.exists():
            frame = (pq.read_table(path).to_pandas() if name.endswith(".parquet")
                     else pd.DataFrame(read_jsonl(path)))
            break
    else:
        raise RecordsError(f"{run.path}: this run kept no per-chunk timings (no "
                           f"{' or '.join(CHUNK_FILES)}); run with keep_chunk_timings=true "
                           "(--keep-chunk-timings true) to get them; per-batch stall figures "
                           "are always recorded — see backpressure() and stall_by_size()")
    for col in CHUNK_FIELDS:
        if col not in frame:
            frame[col] = pd.Series(dtype=float)
    frame = frame.sort_values(["at", "seq", "attempt", "chunk"], kind="stable")
    frame = frame.reset_index(drop=True)
    at = frame["at"].to_numpy(dtype=float)
    starts = run.batches["started_at"] if len(run.batches) else pd.Series(dtype=float)
    origin = float(starts.min()) if len(starts) else (float(at.min()) if at.size else 0.0)
    frame["time"] = _utc(at)
    frame["elapsed_s"] = at - origin
    return frame


def window(run: Run, start: float | None = None, end: float | None = None) -> Run:
    """The part of ``run`` whose batches started from ``start`` to before ``end`` seconds
    after the run's first batch start (None: open-ended), as a :class:`Run`.

    For steady-state figures: ``run.window(2).latency()`` leaves out the first two seconds
    (connections opening, caches warming). Every figure of the returned Run is over those
    batches only (``duration_s`` spans their first start to their last end); its
    :func:`crosscheck` is None, since the server's counters cover the whole run.
    """
    if not isinstance(run, Run):
        raise TypeError("window needs a Run from load_run()")
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ValueError(f"{name}: {value!r}; give seconds since the run's first start")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end ({end:g}) must be after start ({start:g})")
    df = run.batches
    if len(df):
        offset = df["started_at"].to_numpy(dtype=float) - float(df["started_at"].min())
        keep = np.ones(len(df), dtype=bool)
        if start is not None:
            keep &= offset >= start
        if end is not None:
            keep &= offset < end
        df = df[keep].reset_index(drop=True)
    meta = {k: v for k, v in run.meta.items() if k not in ("server_stats", "server")}
    meta["window"] = {"start_s": start, "end_s": end}
    return Run(path=run.path, meta=meta, batches=df, source=run.source,
               notes=list(run.notes), exit_code=run.exit_code, log=run.log,
               interrupted=run.interrupted)


def dedupe(run: Run | pd.DataFrame) -> pd.DataFrame:
    """Expected vs reported items per injected fault kind, on batches sent exactly once.

    Rows: ``none`` (no fault), each fault kind (batches with that fault; a batch with two
    kinds is in both rows) and ``all``. Only first-try batches (one stream attempt, not
    cached or dropped) compare exactly — the generator's expectation is for the first
    stream, and retries add their own answers — so sums and ``mismatched`` cover those;
    ``retried`` counts the batches left out.
    """
    df = _frame(run)
    sent = df[~df["outcome"].isin(("dropped", "cached"))] if len(df) else df
    first = (sent["attempts"] == 1).to_numpy()
    faults = {k: sent[f"fault_{k}"].to_numpy(dtype=np.int64) for k in FAULT_KINDS}
    any_fault = np.zeros(len(sent), dtype=bool)
    for v in faults.values():
        any_fault |= v > 0
    masks = {"none": ~any_fault, **{k: v > 0 for k, v in faults.items()},
             "all": np.ones(len(sent), dtype=bool)}
    exp_d = sent["expected_deduplicated"].to_numpy(dtype=np.int64)
    got_d = sent["items_deduplicated"].to_numpy(dtype=np.int64)
    exp_a = sent["expected_accepted"].to_numpy(dtype=np.int64)
    got_a = sent["items_accepted"].to_numpy(dtype=np.int64)
    rows = {}
    for label, mask in masks.items():
        m = mask & first
        rows[label] = {
            "batches": int(mask.sum()),
            "injected": int(faults[label][mask].sum()) if label in faults else 0,
            "first_try": int(m.sum()),
            "retried": int((mask & ~first).sum()),
            "expected_deduplicated": int(exp_d[m].sum()),
            "reported_deduplicated": int(got_d[m].sum()),
            "deduplicated_diff": int(got_d[m].sum() - exp_d[m].sum()),
            "expected_accepted": int(exp_a[m].sum()),
            "reported_accepted": int(got_a[m].sum()),
            "accepted_diff": int(got_a[m].sum() - exp_a[m].sum()),
            "mismatched": int((m & ((exp_d != got_d) | (exp_a != got_a))).sum()),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "fault"
    return out


SEAL_CLASSES = ("first_try", "after_retry", "never", "cached", "dropped")


def _seal_class(df: pd.DataFrame) -> pd.Series:
    sealed = df["sealed"].to_numpy(dtype=bool)
    attempt = df["sealed_attempt"].fillna(1).to_numpy(dtype=np.int64) if len(df) else \
        np.array([], dtype=np.int64)
    outcome = df["outcome"].astype(str).to_numpy()
    cls = np.select(
        [outcome == "dropped", outcome == "cached", sealed & (attempt <= 1), sealed],
        ["dropped", "cached", "first_try", "after_retry"], default="never")
    return pd.Series(pd.Categorical(cls, categories=SEAL_CLASSES), index=df.index)


def seal_outcomes(run: Run | pd.DataFrame) -> pd.DataFrame:
    """Batches sealed on the first try, after a retry, never; plus cached and dropped."""
    df = _frame(run)
    counts = _seal_class(df).value_counts().reindex(SEAL_CLASSES, fill_value=0)
    out = pd.DataFrame({"batches": counts.astype("int64")})
    total = int(counts.sum())
    out["share"] = out["batches"] / total if total else math.nan
    out.index.name = "seal"
    return out


def seal_causes(run: Run | pd.DataFrame) -> pd.DataFrame:
    """Why seals were late or never came: batches per (seal class, cause).

    For ``after_retry`` the causes are the reasons earlier attempts ended
    (``retry_reasons``; a batch counts once per distinct reason); for ``never`` the
    ``error_kind`` (or the outcome when there is none).
    """
    df = _frame(run)
    cls = _seal_class(df)
    rows: list[tuple[str, str]] = []
    late = df[cls == "after_retry"]
    for reasons in late["retry_reasons"].fillna(""):
        causes = {r.strip() for r in str(reasons).split(",") if r.strip()} or {"unknown"}
        rows.extend(("after_retry", c) for c in sorted(causes))
    never = df[cls == "never"]
    kinds = never["error_kind"].astype(object).where(never["error_kind"].notna(),
                                                     never["outcome"].astype(object))
    rows.extend(("never", str(k)) for k in kinds)
    if not rows:
        return pd.DataFrame({"batches": pd.Series([], dtype="int64")},
                            index=pd.MultiIndex.from_tuples([], names=["seal", "cause"]))
    out = pd.DataFrame(rows, columns=["seal", "cause"]).value_counts().sort_index()
    return out.rename("batches").to_frame()


def rate_limiting(run: Run | pd.DataFrame) -> pd.Series:
    """429 answers, time spent waiting for the limit, and how ``x-ratelimit-reset`` came."""
    df = _frame(run)
    wait = _float(df["rate_limit_wait_ms"])
    limited = df["rate_limited"].to_numpy(dtype=np.int64) > 0
    waits = wait[wait > 0]
    units = df["ratelimit_reset_unit"].astype(object).value_counts()
    out: dict[str, Any] = {
        "responses_429": int(df["rate_limited"].sum()),
        "batches_limited": int(limited.sum()),
        "batches_failed_rate_limited": int((df["error_kind"] == "rate_limited").sum()),
        "wait_s_total": float(np.nansum(wait)) / 1000.0,
        **{f"wait_ms_{k}": v for k, v in _percentiles(waits, (50, 95)).items()},
        "reset_unit_s": int(units.get("s", 0)),
        "reset_unit_ms": int(units.get("ms", 0)),
    }
    return pd.Series(out, name=_label(run, "run"), dtype=object)


def breakdown(run: Run | pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Per group of ``by`` (a record column or columns): batches, items, bytes, failed,
    sealed, violations, rates and total-latency p50/p95/p99/max (as :func:`summary`).

    ``items_per_s`` divides a group's items by the group's own span (its first start to
    its last end).
    """
    df = _sent(_frame(run))
    keys = [by] if isinstance(by, str) else list(by)
    unknown = [k for k in keys if k not in df.columns]
    if unknown:
        raise ValueError(f"by: {unknown} not record columns")
    work = df[keys].copy()
    work["items"] = df["items_accepted"]
    work["bytes"] = df["bytes_sent"]
    work["failed"] = df["outcome"].isin(FAILURE_OUTCOMES)
    work["sealed"] = df["outcome"].isin(SUCCESS_OUTCOMES)
    work["violations"] = df["violations"]
    work["started_at"] = df["started_at"]
    work["ended_at"] = df["ended_at"]
    g = work.groupby(keys, observed=True, sort=True)
    out = g.agg(batches=("items", "size"), items=("items", "sum"), bytes=("bytes", "sum"),
                failed=("failed", "sum"), sealed=("sealed", "sum"),
                violations=("violations", "sum"),
                first=("started_at", "min"), last=("ended_at", "max"))
    span = out.pop("last") - out.pop("first")
    out["items_per_s"] = out["items"] / span.where(span > 0)
    out["error_rate"] = out["failed"] / out["batches"]
    out["seal_rate"] = out["sealed"] / out["batches"]
    codes = g.ngroup().to_numpy()
    pct = _group_percentiles(codes, _float(df["total_ms"]), (50, 95, 99))
    pct.columns = [f"total_ms_{c}" for c in pct.columns]
    pct = pct.reindex(range(len(out)))
    for c in pct.columns:
        out[c] = pct[c].to_numpy()
    return out


def by_worker(run: Run | pd.DataFrame) -> pd.DataFrame:
    """:func:`breakdown` per ``worker_id``."""
    return breakdown(run, "worker_id")


def by_task(run: Run | pd.DataFrame) -> pd.DataFrame:
    """:func:`breakdown` per task identifier, from each record's ``tasks`` (``name:count,…``).

    A batch that mixes tasks counts in each of its tasks' rows; ``items`` is the task's own
    items in those batches (accepted batches only), ``bytes`` their share of bytes sent.
    Records of schema version 1 carry no ``tasks``: they are grouped per ``task_count``.
    """
    df = _sent(_frame(run))
    tasks = df["tasks"].astype(object)
    if len(df) and tasks.isna().all():
        return breakdown(df, "task_count")
    parts = tasks.fillna("").str.split(",").explode()
    named = parts.str.rpartition(":")
    counts = pd.to_numeric(named[2], errors="coerce").fillna(0).astype(np.int64)
    rows = df.loc[parts.index].copy()
    rows["task"] = named[0].to_numpy()
    share = counts.to_numpy() / rows["run_count"].where(rows["run_count"] > 0, 1).to_numpy()
    accepted = rows["outcome"].isin(SUCCESS_OUTCOMES).to_numpy()
    rows["items_accepted"] = np.where(accepted, counts.to_numpy(), 0)
    rows["bytes_sent"] = np.rint(rows["bytes_sent"].to_numpy(dtype=float) * share).astype(
        np.int64)
    return breakdown(rows.reset_index(drop=True), "task")


def _server_stats(meta: dict[str, Any]) -> dict[str, Any] | None:
    for candidate in (meta.get("server_stats"), (meta.get("server") or {}).get("stats")
                      if isinstance(meta.get("server"), dict) else None):
        if isinstance(candidate, dict) and candidate:
            return candidate
    return None


CROSSCHECK = (
    # (row, client figure, server counter)
    ("create_requests", "create_attempts", "create_requests"),
    ("batches_created", "_created", "batches_created"),
    ("batches_cached", "_cached", "batches_cached"),
    ("batches_sealed", "_sealed", "batches_sealed"),
    ("stream_requests", "attempts", "stream_requests"),
    ("lines", "lines_sent", "lines_read"),
    ("bytes", "bytes_sent", "bytes_read"),
    ("items_accepted", "items_accepted", "items_enqueued"),
    ("items_deduplicated", "items_deduplicated", "items_deduplicated"),
    ("rate_limited", "rate_limited", "rate_limited"),
)


def crosscheck(run: Run) -> pd.DataFrame | None:
    """The run's figures against the embedded server's truth counters, when run.json holds
    a final stats snapshot (``server_stats`` or ``server.stats``); None otherwise.

    Columns ``client``, ``server``, ``difference`` (client − server) and ``relative``
    (difference ÷ server). Lines and bytes may legitimately differ when a stream ends at an
    error line (the server stops reading there).
    """
    if not isinstance(run, Run):
        raise TypeError("crosscheck needs a Run (the server counters live in run.json)")
    stats = _server_stats(run.meta)
    if stats is None:
        return None
    df = _sent(run.batches)
    not_cached = df["outcome"] != "cached"
    derived = {
        "_created": int((df["batch_id"].notna() & not_cached).sum()),
        "_cached": int((~not_cached).sum()),
        "_sealed": int((df["sealed"] & not_cached).sum()),
    }
    rows = {}
    for label, client_col, counter in CROSSCHECK:
        if counter not in stats:
            continue
        client = derived[client_col] if client_col in derived else int(df[client_col].sum())
        server = stats[counter]
        rows[label] = {"client": client, "server": server, "difference": client - server,
                       "relative": _ratio(client - server, server)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "figure"
    return out


def compare(run_a: Run | pd.DataFrame, run_b: Run | pd.DataFrame) -> pd.DataFrame:
    """Two runs side by side: summary figures, latency percentiles and backpressure, with
    ``difference`` (b − a) and ``change`` (b ÷ a − 1); for the key figures of
    :mod:`loadkit.regression` (a is the baseline, b the candidate) also ``ci_low`` and
    ``ci_high``, the 95 % bootstrap interval of ``change`` for rates and latencies and of
    ``difference`` for shares, per-batch figures and violations, and ``verdict`` (``worse``,
    ``better``, ``same``: whether the whole interval is beyond the figure's tolerance, 10 %
    for rates and latencies). ``loadkit compare A B`` prints the same figures."""
    from loadkit.regression import FIGURES  # noqa: PLC0415 - the figures' one definition
    from loadkit.regression import compare as regression_compare  # noqa: PLC0415

    def figures(run: Run | pd.DataFrame) -> pd.Series:
        s = summary(run).astype(float)
        lat = latency(run)
        extra = {f"{m}_ms_{p}": lat.loc[m, p] for m in ("create", "stream", "total",
                                                        "total_from_intended")
                 for p in ("p50", "p95", "p99", "max")}
        bp = backpressure(run)
        extra["stall_fraction_p90"] = bp["stall_fraction_p90"]
        extra["stalled_share"] = bp["stalled_share"]
        extra["retries_per_batch"] = _ratio(s["retries"], s["batches"])
        extra["rate_limited_per_batch"] = _ratio(s["rate_limited"], s["batches"])
        return pd.concat([s, pd.Series(extra, dtype=float)])

    a, b = figures(run_a), figures(run_b)
    la, lb = _label(run_a, "a"), _label(run_b, "b")
    if la == lb:
        la, lb = f"a: {la}", f"b: {lb}"
    out = pd.DataFrame({la: a, lb: b})
    out["difference"] = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        out["change"] = (b / a - 1).where(a != 0)
    out["ci_low"] = out["ci_high"] = math.nan
    out["verdict"] = pd.Series(None, index=out.index, dtype=object)
    if len(_sent(_frame(run_a))) and len(_sent(_frame(run_b))):
        key = regression_compare(run_b, run_a)
        for fig in FIGURES:
            if fig.old_row in out.index:
                out.loc[fig.old_row, ["ci_low", "ci_high"]] = key.loc[
                    fig.key, ["ci_low", "ci_high"]].to_numpy(dtype=float)
                out.loc[fig.old_row, "verdict"] = key.at[fig.key, "verdict"]
    out.index.name = "figure"
    return out
