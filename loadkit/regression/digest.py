"""Internal: a run's digest — what a regression comparison needs of a run, and baseline.json.

A :class:`Digest` holds per-time-window sums (for the block bootstrap of rates and shares),
one latency histogram per latency field (for the bootstrap of percentiles), the record schema
version, and the settings that decide what a run measures. It is built from a run's records
(:func:`digest`) or read from a ``baseline.json`` (:func:`load_baseline`); both sides of a
comparison go through it, so a run directory and the baseline.json written from it compare
identically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from loadkit.errors import LoadkitError, RecordsError
from loadkit.metrics import RecordColumns
from loadkit.records import RECORDS_JSONL, RECORDS_PARQUET, RUN_META, SCHEMA_VERSION
from loadkit.regression.bootstrap import percentile_point
from loadkit.regression.figures import LATENCY_FIELDS, PERCENTILES
from loadkit.vocabulary import FAILURE_OUTCOMES, SUCCESS_OUTCOMES

__all__ = [
    "BASELINE_FORMAT",
    "BINS_PER_DECADE",
    "WINDOW_SUMS",
    "BaselineError",
    "Digest",
    "digest",
    "load_baseline",
    "write_baseline",
]

BASELINE_FORMAT = 1
"""Version of the baseline.json layout (``format``); a different one is refused."""
BINS_PER_DECADE = 230
"""Latency histogram resolution: 230 log-spaced bins per decade, each 1.0 % wide, so a
percentile read from it is within ±0.5 % of the exact one (the gate's tolerance is 10 %)."""
MIN_MS = 1e-3
"""Latencies below 1 µs share the lowest bin."""
TARGET_WINDOWS = 30
"""A run is cut into about this many time windows (by batch end) for the block bootstrap."""
MIN_WINDOW_S = 0.1
WINDOW_SUMS: tuple[str, ...] = (
    "seconds", "batches", "items", "bytes", "sealed", "failed", "retries", "rate_limited",
    "violations", "stall_ms", "stream_ms",
)
"""Per-window sums a digest keeps: the numerators and denominators of the ratio figures.
For each latency field it also keeps ``n(FIELD)`` (batches with a value) and
``above_pNN(FIELD)`` (batches above the run's own percentile): the clustering of slow batches
in time, which widens the percentiles' intervals (see :mod:`loadkit.regression.bootstrap`)."""
_IGNORED_OPTIONS = frozenset({"results_dir", "run_id", "threshold", "baseline",
                              "keep_chunk_timings"})
"""Options that do not change what a run measures (left out of a digest's settings)."""


class BaselineError(LoadkitError, ValueError):
    """A baseline that cannot be compared with (one line naming the file; exit code 2)."""


@dataclass(eq=False)
class Digest:
    """What a comparison needs of one run (see the module docstring)."""

    run_id: str
    source: str
    """Where it came from: the run directory or the baseline.json."""
    schema_version: int | None
    batches: int
    duration_s: float
    window_s: float
    windows: dict[str, np.ndarray]
    """:data:`WINDOW_SUMS` → one value per window, all the same length."""
    latency: dict[str, tuple[np.ndarray, np.ndarray]]
    """Latency field → (bin numbers ascending, counts); a field with no values is absent."""
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None

    @property
    def n_windows(self) -> int:
        return len(self.windows["seconds"])

    def total(self, name: str) -> float:
        """Σ of a window sum over the run (``violations``, ``items`` …)."""
        return float(np.sum(self.windows[name])) if name in self.windows else math.nan

    def histogram(self, field_name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(representative values in ms ascending, counts) of a latency field, or None."""
        got = self.latency.get(field_name)
        if got is None or not got[1].sum():
            return None
        bins, counts = got
        return bin_values(bins), counts

    def to_json(self) -> dict[str, Any]:
        """The baseline.json content (plain JSON types; small: a few kB)."""
        def numbers(values: np.ndarray) -> list[Any]:
            if np.issubdtype(values.dtype, np.integer):
                return [int(v) for v in values]
            return [float(v) for v in values]

        return {
            "loadkit_baseline": BASELINE_FORMAT,
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "source": self.source,
            "created_at": self.created_at,
            "batches": self.batches,
            "duration_s": self.duration_s,
            "window_s": self.window_s,
            "windows": {k: numbers(v) for k, v in self.windows.items()},
            "latency": {
                "bins_per_decade": BINS_PER_DECADE,
                **{f: {"bins": numbers(b), "counts": numbers(c)}
                   for f, (b, c) in self.latency.items()},
            },
            "settings": self.settings,
        }


def bin_of(values_ms: np.ndarray) -> np.ndarray:
    """Histogram bin number of each latency (ms)."""
    return np.floor(np.log10(np.maximum(values_ms, MIN_MS)) * BINS_PER_DECADE).astype(np.int64)


def bin_values(bins: np.ndarray) -> np.ndarray:
    """The representative latency (ms) of each bin: its geometric middle."""
    return np.power(10.0, (bins + 0.5) / BINS_PER_DECADE)


def _settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide what a run measures: target, model, users and the options."""
    out: dict[str, Any] = {}
    if meta.get("embedded_server"):
        out["target"] = "embedded reference server"
    elif meta.get("target"):
        parts = urlsplit(str(meta["target"]))
        out["target"] = f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else "") + parts.path
    if meta.get("model"):
        out["model"] = meta["model"]
    locust = meta.get("locust")
    if isinstance(locust, dict):
        for key in ("num_users", "spawn_rate", "run_time", "processes"):
            if locust.get(key) is not None:
                out[key] = locust[key]
    options = meta.get("options")
    if isinstance(options, dict):
        out.update({k: v for k, v in options.items() if k not in _IGNORED_OPTIONS})
    return out


def digest(records: Any, meta: dict[str, Any] | None = None, *, source: str = "",
           window_s: float | None = None) -> Digest:
    """The digest of a run's records (a pandas DataFrame, a pyarrow Table, dicts or
    BatchRecords; ``dropped`` records are not batches) and its run.json ``meta``.

    Windows cut the span from the first batch start to the last batch end (by batch end)
    into about :data:`TARGET_WINDOWS` equal parts (``window_s`` to choose); each window's
    ``seconds`` is its share of that span, so Σ items ÷ Σ seconds is the run's items/s.
    """
    meta = meta or {}
    cols = RecordColumns(records)
    kept = cols.kept

    def column(name: str) -> np.ndarray:
        return cols.numeric(name)[kept]

    started, ended = column("started_at"), column("ended_at")
    batches = int(kept.sum())
    if batches and not (np.isnan(started).all() or np.isnan(ended).all()):
        first, last = float(np.nanmin(started)), float(np.nanmax(ended))
        duration = max(last - first, 0.0)
    else:
        first, duration = 0.0, math.nan
    if window_s is None:
        window_s = max(MIN_WINDOW_S, duration / TARGET_WINDOWS) if duration > 0 else 1.0
    window_s = round(window_s, 6)
    duration = round(duration, 6) if batches else duration
    n_windows = math.floor(duration / window_s) + 1 if batches and duration >= 0 else 0
    if n_windows:
        end_at = np.where(np.isnan(ended), first, ended)
        idx = np.clip(np.floor((end_at - first) / window_s).astype(np.int64), 0, n_windows - 1)
        seconds = np.full(n_windows, window_s)
        seconds[-1] = duration - window_s * (n_windows - 1)
    else:
        idx, seconds = np.zeros(0, dtype=np.int64), np.zeros(0)

    def sums(values: np.ndarray, integer: bool = True) -> np.ndarray:
        out = np.bincount(idx, weights=np.nan_to_num(values), minlength=n_windows)
        return np.rint(out).astype(np.int64) if integer else out

    stream = column("stream_ms")
    streamed = ~np.isnan(stream) & (stream > 0)
    windows = {
        "seconds": seconds,
        "batches": sums(np.ones(batches)),
        "items": sums(column("items_accepted")),
        "bytes": sums(column("bytes_sent")),
        "sealed": sums(cols.outcome_in(*SUCCESS_OUTCOMES)[kept].astype(float)),
        "failed": sums(cols.outcome_in(*FAILURE_OUTCOMES)[kept].astype(float)),
        "retries": sums(np.clip(column("attempts") - 1, 0, None)),
        "rate_limited": sums(column("rate_limited")),
        "violations": sums(column("violations")),
        "stall_ms": sums(np.where(streamed, column("stall_ms"), 0.0), integer=False),
        "stream_ms": sums(np.where(streamed, stream, 0.0), integer=False),
    }
    latency: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in LATENCY_FIELDS:
        all_values = column(name)
        has = ~np.isnan(all_values)
        values = all_values[has]
        if not values.size:
            continue
        bins, counts = np.unique(bin_of(values), return_counts=True)
        latency[name] = (bins, counts.astype(np.int64))
        windows[f"n({name})"] = sums(has.astype(float))
        all_bins = np.where(has, bin_of(np.nan_to_num(all_values)), np.iinfo(np.int64).min)
        for p in PERCENTILES:
            q = percentile_point(bins, counts, p)  # on bin numbers: the point's own bin
            windows[f"above_p{p:g}({name})"] = sums((all_bins > q).astype(float))
    version = meta.get("schema_version")
    for key in ("seconds", "stall_ms", "stream_ms"):  # as baseline.json keeps them
        windows[key] = np.round(windows[key], 6)
    return Digest(
        run_id=str(meta.get("run_id") or source or "run"), source=source,
        schema_version=int(version) if isinstance(version, (int, str)) and
        str(version).isdigit() else None,
        batches=batches, duration_s=duration, window_s=float(window_s), windows=windows,
        latency=latency, settings=_settings(meta), created_at=meta.get("ended_at"))


def _digest_of_run_dir(path: Path) -> Digest:
    import warnings  # noqa: PLC0415

    from loadkit.analysis import load_run  # noqa: PLC0415 - pandas only when reading runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what the loader worked around is not ours to say
        run = load_run(path)
    return digest(run.batches, run.meta, source=str(path))


def _from_json(data: Any, path: Path) -> Digest:
    if not isinstance(data, dict) or "loadkit_baseline" not in data:
        raise BaselineError(f"{path}: not a loadkit baseline (no 'loadkit_baseline' key); "
                            "write one with loadkit check RUN --write-baseline FILE")
    if data["loadkit_baseline"] != BASELINE_FORMAT:
        raise BaselineError(f"{path}: baseline format {data['loadkit_baseline']!r}; this "
                            f"loadkit reads format {BASELINE_FORMAT}: write it again with "
                            "loadkit check RUN --write-baseline FILE")
    try:
        windows = {k: np.asarray(v, dtype=float if k in ("seconds", "stall_ms", "stream_ms")
                                 else np.int64) for k, v in data["windows"].items()}
        missing = [k for k in WINDOW_SUMS if k not in windows]
        if missing:
            raise KeyError("windows." + missing[0])
        lat = data.get("latency") or {}
        if lat and lat.get("bins_per_decade", BINS_PER_DECADE) != BINS_PER_DECADE:
            raise BaselineError(f"{path}: latency histogram of {lat['bins_per_decade']} bins "
                                f"per decade; this loadkit uses {BINS_PER_DECADE}")
        latency = {f: (np.asarray(lat[f]["bins"], dtype=np.int64),
                       np.asarray(lat[f]["counts"], dtype=np.int64))
                   for f in LATENCY_FIELDS if isinstance(lat.get(f), dict)}
        return Digest(run_id=str(data.get("run_id") or path.stem), source=str(path),
                      schema_version=data.get("schema_version"),
                      batches=int(data["batches"]), duration_s=float(data["duration_s"]),
                      window_s=float(data["window_s"]), windows=windows, latency=latency,
                      settings=dict(data.get("settings") or {}),
                      created_at=data.get("created_at"))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BaselineError):
            raise
        raise BaselineError(f"{path}: damaged baseline ({type(exc).__name__}: {exc}); write "
                            "it again with loadkit check RUN --write-baseline FILE") from None


def load_baseline(path: str | Path) -> Digest:
    """A baseline from a run directory or a baseline.json, checked for comparison.

    Raises :class:`BaselineError` (one line naming the file) when it does not exist, cannot be
    read, was recorded with another record schema version, or holds no batches.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.name in (RUN_META, RECORDS_JSONL, RECORDS_PARQUET):
        p = p.parent
    if not p.exists():
        raise BaselineError(f"{p}: no such baseline; give a baseline.json (loadkit check RUN "
                            "--write-baseline FILE) or a run directory")
    if p.is_dir():
        if not (p / RUN_META).exists():
            raise BaselineError(f"{p}: not a run directory (no {RUN_META}); give a "
                                "baseline.json or one run's folder, e.g. results/<run id>")
        try:
            found = _digest_of_run_dir(p)
        except LoadkitError as exc:
            raise BaselineError(f"{p}: cannot read the baseline run ({exc})") from None
        where = p / RUN_META
    else:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BaselineError(f"{p}: cannot read the baseline ({exc})") from None
        found = _from_json(data, p)
        where = p
    if found.schema_version != SCHEMA_VERSION:
        raise BaselineError(f"{where}: baseline recorded with record schema version "
                            f"{found.schema_version}, this loadkit's is {SCHEMA_VERSION}; "
                            "record a new baseline run")
    if found.batches == 0:
        raise BaselineError(f"{where}: the baseline has no batches; record a baseline run "
                            "that completed batches")
    return found


def run_digest(run: Any) -> Digest:
    """The digest of a :class:`~loadkit.analysis.Run`, a records DataFrame, a run directory
    or a :class:`Digest` (returned as is); best effort (no schema check: the candidate)."""
    if isinstance(run, Digest):
        return run
    if isinstance(run, (str, Path)):
        p = Path(run).expanduser()
        if p.is_file() and p.suffix == ".json" and p.name != RUN_META:
            return load_baseline(p)
        try:
            return _digest_of_run_dir(p.parent if p.is_file() else p)
        except RecordsError as exc:
            raise BaselineError(str(exc)) from None
    if hasattr(run, "batches") and hasattr(run, "meta"):
        return digest(run.batches, run.meta, source=str(getattr(run, "path", "")))
    return digest(run, None, source="records")


def write_baseline(run: Any, path: str | Path) -> Digest:
    """Write the baseline.json of ``run`` (a run directory, a Run or a Digest) to ``path``,
    atomically; refuses a run with no batches or of another schema version."""
    found = run_digest(run)
    p = Path(path).expanduser()
    if found.batches == 0:
        raise BaselineError(f"{found.source or p}: the run has no batches; a baseline needs a "
                            "run that completed batches")
    if found.schema_version != SCHEMA_VERSION:
        raise BaselineError(f"{found.source or p}: records of schema version "
                            f"{found.schema_version}, not this loadkit's {SCHEMA_VERSION}; "
                            "a baseline must come from a run of this version")
    if found.created_at is None:
        found.created_at = time.time()
    from loadkit.records import atomic_write  # noqa: PLC0415

    try:
        atomic_write(p, json.dumps(found.to_json(), separators=(",", ":")) + "\n")
    except RecordsError as exc:
        raise BaselineError(str(exc)) from None
    return found
