"""Thresholds: small pass/fail expressions over a run's records (CI smoke runs).

One expression is ``METRIC OP NUMBER``:

- ``OP`` is one of ``<  <=  >  >=  ==  !=``;
- ``NUMBER`` is a decimal number (``2000``, ``0.999``, ``1e-3``, ``5_000``) or a
  percentage (``1%`` is 0.01);
- ``METRIC`` is either an aggregate of a numeric record field —
  ``p95(total_ms)``, ``p99.9(create_ms)``, ``median(stream_ms)``, ``mean(stall_fraction)``,
  ``min(…)``, ``max(…)``, ``sum(…)`` over any int/float/bool field of
  :class:`~loadkit.records.BatchRecord` — or a named run metric:

  ===========================  ===========================================================
  ``batches``                  batches attempted (every record except ``dropped`` ones)
  ``dropped``                  open model: scheduled starts that were not served in time
  ``drop_rate``                dropped ÷ (batches + dropped)
  ``cached``                   batches whose create was an idempotent replay (``cached``)
  ``sealed``                   batches whose outcome is ``sealed`` or ``cached``
  ``seal_rate``                sealed ÷ batches
  ``failed``                   batches whose outcome is ``failed`` or ``not_sealed``
  ``error_rate``               failed ÷ batches
  ``violations``               contract violations summed over all batches
  ``batches_with_violations``  batches with at least one contract violation
  ``verify_failures``          batches whose retrieve-after-seal check failed
  ``rate_limited``             429 answers received
  ``retries``                  stream attempts beyond the first, summed
  ``items``                    items accepted by the server, summed
  ``items_requested``          items asked for (``run_count``), summed
  ``items_deduplicated``       items the server reported as duplicates, summed
  ``lines``                    body lines sent, summed
  ``bytes``                    request body bytes sent, summed
  ``duration_s``               from the first batch start to the last batch end
  ``batches_per_s``            batches ÷ duration_s
  ``items_per_s``              items ÷ duration_s
  ``bytes_per_s``              bytes ÷ duration_s
  ``mb_per_s``                 bytes ÷ 10⁶ ÷ duration_s
  ===========================  ===========================================================

:func:`run_metrics` is the one definition of these figures: :func:`loadkit.analysis.summary`
is the same dict as a pandas Series, so a threshold, the report and a notebook agree.

Aggregates of record fields skip ``dropped`` records (nothing was sent) and empty (null)
values. Percentiles interpolate linearly between the closest ranks (numpy's default). A
metric with no data (no batches, or a field that is null everywhere) measures as ``nan``
(``duration_s`` and the rates of an empty run included) and every comparison with it fails,
so an empty run never passes.

No ``eval``: expressions are parsed by a regular expression and checked against the schema.
"""

from __future__ import annotations

import decimal
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadkit.errors import ThresholdError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EXIT_THRESHOLDS_FAILED",
    "RUN_METRICS",
    "Threshold",
    "ThresholdResult",
    "evaluate",
    "format_table",
    "parse_threshold",
    "parse_thresholds",
    "run_metrics",
    "threshold_texts",
]

EXIT_THRESHOLDS_FAILED = 3
"""Process exit code when any threshold fails (locust's own failure code is 1)."""

DEFAULT_THRESHOLDS: tuple[str, ...] = (
    "batches > 0",
    "seal_rate >= 0.999",
    "error_rate < 0.01",
    "violations == 0",
    "p95(total_ms) < 5000",
)
"""The thresholds of a CI smoke run when none are given (no injected faults assumed)."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_FUNCS = ("mean", "median", "min", "max", "sum")
RUN_METRICS: tuple[str, ...] = (
    "batches", "dropped", "drop_rate", "cached", "sealed", "seal_rate", "failed",
    "error_rate", "violations", "batches_with_violations", "verify_failures", "rate_limited",
    "retries", "items", "items_requested", "items_deduplicated", "lines", "bytes",
    "duration_s", "batches_per_s", "items_per_s", "bytes_per_s", "mb_per_s",
)
"""The keys of :func:`run_metrics`, in its order (the module docstring defines each)."""

_EXPR_RE = re.compile(
    r"""^\s*
    (?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*
    (?:\(\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*)?
    (?P<op><=|>=|==|!=|<|>)\s*
    (?P<number>[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<pct>%)?
    \s*$""",
    re.VERBOSE,
)
_PCT_RE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


def _numeric_fields() -> tuple[str, ...]:
    import pyarrow as pa  # noqa: PLC0415

    from loadkit.records import ARROW_SCHEMA  # noqa: PLC0415 - pyarrow only when used

    return tuple(
        f.name for f in ARROW_SCHEMA
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        or pa.types.is_boolean(f.type)
    )


_ACCEPTED = (
    "METRIC OP NUMBER, e.g. 'p95(total_ms) < 2000' or 'seal_rate >= 0.999'; OP is one of "
    "< <= > >= == !=; METRIC is pNN(field), median/mean/min/max/sum(field) of a numeric "
    "record field, or one of: " + ", ".join(RUN_METRICS)
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed expression. ``func`` is None for a named run metric."""

    text: str
    metric: str
    """The run metric name, or the aggregate (``p95``, ``mean`` …) when ``field`` is set."""
    field: str | None
    op: str
    limit: float

    def __str__(self) -> str:
        return self.text

    @property
    def label(self) -> str:
        return f"{self.metric}({self.field})" if self.field else self.metric

    def check(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return _OPS[self.op](value, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse one expression; :class:`~loadkit.errors.ThresholdError` names it and the form."""
    if isinstance(text, Threshold):
        return text
    m = _EXPR_RE.match(str(text))
    if not m:
        raise ThresholdError(f"threshold {text!r} does not parse; expected {_ACCEPTED}")
    metric, field = m.group("metric"), m.group("field")
    number = decimal.Decimal(m.group("number").replace("_", ""))
    limit = float(number / 100 if m.group("pct") else number)
    if field is None:
        if metric not in RUN_METRICS:
            raise ThresholdError(
                f"threshold {text!r}: unknown metric {metric!r}; expected a run metric ("
                + ", ".join(RUN_METRICS) + ") or an aggregate like p95(total_ms)"
            )
    else:
        if metric not in _FUNCS and not _PCT_RE.match(metric):
            raise ThresholdError(
                f"threshold {text!r}: unknown aggregate {metric!r}; expected pNN (p50, p95, "
                "p99.9 …), " + ", ".join(_FUNCS)
            )
        fields = _numeric_fields()
        if field not in fields:
            raise ThresholdError(
                f"threshold {text!r}: {field!r} is not a numeric record field; expected one "
                "of: " + ", ".join(fields)
            )
    normalised = f"{metric}({field})" if field else metric
    return Threshold(
        text=f"{normalised} {m.group('op')} {m.group('number')}{m.group('pct') or ''}",
        metric=metric, field=field, op=m.group("op"), limit=limit,
    )


def parse_thresholds(texts: Iterable[str | Threshold]) -> tuple[Threshold, ...]:
    """Parse several expressions (the first bad one raises)."""
    return tuple(parse_threshold(t) for t in texts)


def threshold_texts(value: object) -> list[str]:
    """The expressions in ``value``: None, one string or several (a repeated flag, a config
    list), each of which may hold several expressions separated by ``;`` or newlines (one
    flag, environment variable or config line); blanks dropped, Thresholds as their text."""
    if value is None:
        return []
    items: Iterable[object]
    if isinstance(value, (str, Threshold)) or not isinstance(value, Iterable):
        items = [value]
    else:
        items = value
    out: list[str] = []
    for item in items:
        if isinstance(item, Threshold):
            out.append(str(item))
            continue
        out.extend(p.strip() for p in str(item).replace("\n", ";").split(";") if p.strip())
    return out


# --- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: Threshold
    value: float
    passed: bool


class _Columns:
    """Record columns as numpy arrays, from a pyarrow Table, a pandas DataFrame, or an
    iterable of records / dicts (pandas is never imported here)."""

    def __init__(self, records: Any) -> None:
        self._table = self._frame = None
        self._rows: dict[str, list[Any]] = {}
        if hasattr(records, "to_pydict"):  # pyarrow.Table
            self._table = records
            n = records.num_rows
        elif hasattr(records, "columns") and hasattr(records, "to_numpy"):  # pandas.DataFrame
            self._frame = records
            n = len(records)
        else:
            rows = [r if isinstance(r, Mapping) else r.as_dict() for r in records]
            for i, row in enumerate(rows):
                for key, value in row.items():
                    self._rows.setdefault(key, [None] * i).append(value)
                for column in self._rows.values():  # a key missing from this row: null
                    if len(column) <= i:
                        column.append(None)
            n = len(rows)
        self.n = n
        self.kept = ~self.outcome_in("dropped")
        """Rows that are batches (every record except ``dropped`` ones)."""
        self._some_dropped = not bool(self.kept.all())

    def outcome_in(self, *values: str) -> np.ndarray:
        """Rows whose outcome is one of ``values``, compared by the column's own engine
        (a categorical or Arrow column is never turned into a million Python strings)."""
        if not self._has("outcome"):
            return np.zeros(self.n, dtype=bool)
        if self._table is not None:
            import pyarrow as pa  # noqa: PLC0415 - only for a Table, which brought pyarrow
            import pyarrow.compute as pc  # noqa: PLC0415

            hit = pc.is_in(self._table.column("outcome"), value_set=pa.array(values))
            return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        if self._frame is not None:
            return np.asarray(self._frame["outcome"].isin(values).to_numpy(), dtype=bool)
        return np.isin(self._objects("outcome"), values)

    def _has(self, name: str) -> bool:
        if self._table is not None:
            return name in self._table.column_names
        if self._frame is not None:
            return name in self._frame.columns
        return name in self._rows

    def _objects(self, name: str) -> np.ndarray:
        out = np.empty(self.n, dtype=object)
        if not self._has(name):
            return out
        if self._table is not None:
            out[:] = self._table.column(name).to_pylist()
        elif self._frame is not None:
            out[:] = self._frame[name].astype(object).to_numpy()
        else:
            out[:] = self._rows[name]
        return out

    def numeric(self, name: str) -> np.ndarray:
        """Column ``name`` as float64, null as NaN (True/False as 1/0), every row."""
        if not self._has(name):
            return np.full(self.n, np.nan)
        if self._table is not None:
            import pyarrow as pa  # noqa: PLC0415 - only for a Table, which brought pyarrow
            import pyarrow.compute as pc  # noqa: PLC0415

            column = pc.cast(self._table.column(name), pa.float64())
            return np.asarray(column.to_numpy(), dtype=float)
        if self._frame is not None:
            return self._frame[name].to_numpy(dtype=float, na_value=np.nan)
        return np.array([np.nan if v is None else v for v in self._rows[name]], dtype=float)

    def field(self, name: str) -> np.ndarray:
        """The non-null values of ``name`` over batches (``dropped`` records left out)."""
        values = self.numeric(name)
        if self._some_dropped:
            values = values[self.kept]
        missing = np.isnan(values)
        return values[~missing] if missing.any() else values


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else math.nan


def run_metrics(records: Any) -> dict[str, Any]:
    """Every run metric of :data:`RUN_METRICS` over ``records`` (a pyarrow Table, a pandas
    DataFrame, dicts or :class:`~loadkit.records.BatchRecord`): counts as ints, the rest as
    floats, ``nan`` where there is no data. The one definition the thresholds and
    :func:`loadkit.analysis.summary` share."""
    cols = records if isinstance(records, _Columns) else _Columns(records)
    kept = cols.kept
    batches = int(kept.sum())
    dropped = cols.n - batches

    def total(name: str) -> int:
        return int(cols.field(name).sum())

    sealed = int(cols.outcome_in("sealed", "cached").sum())
    failed = int(cols.outcome_in("failed", "not_sealed").sum())
    items, nbytes = total("items_accepted"), total("bytes_sent")
    started, ended = cols.field("started_at"), cols.field("ended_at")
    duration = float(ended.max() - started.min()) if started.size and ended.size else math.nan
    verified = cols.numeric("verified")[cols.kept]
    out = {
        "batches": batches,
        "dropped": dropped,
        "drop_rate": _ratio(dropped, cols.n),
        "cached": int(cols.outcome_in("cached").sum()),
        "sealed": sealed,
        "seal_rate": _ratio(sealed, batches),
        "failed": failed,
        "error_rate": _ratio(failed, batches),
        "violations": total("violations"),
        "batches_with_violations": int((cols.field("violations") > 0).sum()),
        "verify_failures": int((verified == 0).sum()),
        "rate_limited": total("rate_limited"),
        "retries": int(np.clip(cols.field("attempts") - 1, 0, None).sum()),
        "items": items,
        "items_requested": total("run_count"),
        "items_deduplicated": total("items_deduplicated"),
        "lines": total("lines_sent"),
        "bytes": nbytes,
        "duration_s": duration,
        "batches_per_s": _ratio(batches, duration),
        "items_per_s": _ratio(items, duration),
        "bytes_per_s": _ratio(nbytes, duration),
        "mb_per_s": _ratio(nbytes / 1e6, duration),
    }
    return out


class _Measures:
    def __init__(self, records: Any) -> None:
        self.cols = _Columns(records)
        self._metrics: dict[str, Any] | None = None

    def metric(self, name: str) -> float:
        if self._metrics is None:
            self._metrics = run_metrics(self.cols)
        return float(self._metrics[name])

    def aggregate(self, func: str, field: str) -> float:
        data = self.cols.field(field)
        if data.size == 0:
            return math.nan
        if func == "mean":
            return float(data.mean())
        if func == "median":
            return float(np.median(data))
        if func == "min":
            return float(data.min())
        if func == "max":
            return float(data.max())
        if func == "sum":
            return float(data.sum())
        return float(np.percentile(data, float(func[1:])))

    def value(self, t: Threshold) -> float:
        return self.aggregate(t.metric, t.field) if t.field else self.metric(t.metric)


def evaluate(
    thresholds: Iterable[str | Threshold], records: Any
) -> list[ThresholdResult]:
    """Evaluate thresholds over records: a pyarrow Table, a DataFrame, dicts or BatchRecords."""
    parsed = parse_thresholds(thresholds)
    measures = _Measures(records)
    out = []
    for t in parsed:
        value = measures.value(t)
        out.append(ThresholdResult(t, value, t.check(value)))
    return out


def _fmt(value: float) -> str:
    if value is None or math.isnan(value):
        return "no data"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def format_table(results: Sequence[ThresholdResult]) -> str:
    """A plain-text table: threshold, measured value, pass/fail, and a summary line."""
    rows = [("threshold", "measured", "result")]
    rows += [(str(r.threshold), _fmt(r.value), "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not r.passed for r in results)
    lines.append(
        f"thresholds: {len(results) - failed} passed, {failed} failed"
        + (f" (exit code {EXIT_THRESHOLDS_FAILED})" if failed else "")
    )
    return "\n".join(lines)
