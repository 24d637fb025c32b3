"""Thresholds: small pass/fail expressions over a run's records (CI smoke runs).

One expression is ``METRIC OP NUMBER``:

- ``OP`` is one of ``<  <=  >  >=  ==  !=``;
- ``NUMBER`` is a decimal number (``2000``, ``0.999``, ``1e-3``, ``5_000``) or a
  percentage (``1%`` is 0.01);
- ``METRIC`` is either an aggregate of a numeric record field —
  ``p95(total_ms)``, ``p99.9(create_ms)``, ``median(stream_ms)``, ``mean(stall_fraction)``,
  ``min(…)``, ``max(…)``, ``sum(…)`` over any int/float/bool field of
  :class:`~loadkit.records.BatchRecord` — or a named run metric:

  ===================  ===================================================================
  ``batches``          batches attempted (every record except ``dropped`` ones)
  ``sealed``           batches whose outcome is ``sealed`` or ``cached``
  ``seal_rate``        sealed ÷ batches
  ``failed``           batches whose outcome is ``failed`` or ``not_sealed``
  ``error_rate``       failed ÷ batches
  ``dropped``          open model: scheduled starts that were not served in time
  ``drop_rate``        dropped ÷ (batches + dropped)
  ``violations``       contract violations summed over all batches
  ``verify_failures``  batches whose retrieve-after-seal check failed
  ``rate_limited``     429 answers received
  ``retries``          stream attempts beyond the first, summed
  ``items``            items accepted by the server, summed
  ``bytes``            request body bytes sent, summed
  ``duration_s``       from the first batch start to the last batch end
  ``items_per_s``      items ÷ duration_s
  ``bytes_per_s``      bytes ÷ duration_s
  ``batches_per_s``    batches ÷ duration_s
  ===================  ===================================================================

Aggregates of record fields skip ``dropped`` records (nothing was sent) and empty (null)
values. Percentiles interpolate linearly between the closest ranks (numpy's default). A
metric with no data (no batches, or a field that is null everywhere) measures as ``nan``
and every comparison with it fails, so an empty run never passes.

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
    "batches", "sealed", "seal_rate", "failed", "error_rate", "dropped", "drop_rate",
    "violations", "verify_failures", "rate_limited", "retries", "items", "bytes",
    "duration_s", "items_per_s", "bytes_per_s", "batches_per_s",
)

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


# --- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: Threshold
    value: float
    passed: bool


def _columns(records: Any) -> dict[str, list[Any]]:
    """Column lists from a pyarrow Table, a pandas DataFrame, or records / dicts."""
    if hasattr(records, "to_pydict"):  # pyarrow.Table
        return records.to_pydict()
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # pandas.DataFrame
        frame = records.astype(object).where(records.notna(), None)
        return {c: list(frame[c]) for c in frame.columns}
    cols: dict[str, list[Any]] = {}
    rows = list(records)
    if not rows:
        return cols
    for row in rows:
        data = row if isinstance(row, Mapping) else row.as_dict()
        for key, value in data.items():
            cols.setdefault(key, []).append(value)
    return cols


class _Measures:
    def __init__(self, records: Any) -> None:
        self.cols = _columns(records)
        outcomes = self.cols.get("outcome", [])
        self.n_all = len(outcomes)
        self.keep = np.array([o != "dropped" for o in outcomes], dtype=bool)
        self.outcomes = [o for o in outcomes if o != "dropped"]
        self.cache: dict[str, float] = {}

    def field(self, name: str) -> np.ndarray:
        values = self.cols.get(name)
        if values is None:
            return np.empty(0)
        kept = [v for v, k in zip(values, self.keep, strict=True) if k and v is not None]
        return np.asarray(kept, dtype=float)

    def total(self, name: str) -> float:
        return float(self.field(name).sum())

    def metric(self, name: str) -> float:
        if name in self.cache:
            return self.cache[name]
        batches = len(self.outcomes)
        dropped = self.n_all - batches
        sealed = sum(o in ("sealed", "cached") for o in self.outcomes)
        failed = sum(o in ("failed", "not_sealed") for o in self.outcomes)
        started = self.field("started_at")
        ended = self.field("ended_at")
        duration = float(ended.max() - started.min()) if batches else math.nan
        verified = [v for v, k in zip(self.cols.get("verified", []), self.keep, strict=True)
                    if k]

        def per_s(x: float) -> float:
            return x / duration if duration and duration > 0 else math.nan

        def share(x: float, n: int) -> float:
            return x / n if n else math.nan

        values = {
            "batches": float(batches),
            "sealed": float(sealed),
            "seal_rate": share(sealed, batches),
            "failed": float(failed),
            "error_rate": share(failed, batches),
            "dropped": float(dropped),
            "drop_rate": share(dropped, self.n_all),
            "violations": self.total("violations"),
            "verify_failures": float(sum(v is False for v in verified)),
            "rate_limited": self.total("rate_limited"),
            "retries": float(np.clip(self.field("attempts") - 1, 0, None).sum()),
            "items": self.total("items_accepted"),
            "bytes": self.total("bytes_sent"),
            "duration_s": duration,
            "items_per_s": per_s(self.total("items_accepted")),
            "bytes_per_s": per_s(self.total("bytes_sent")),
            "batches_per_s": per_s(batches),
        }
        self.cache.update(values)
        return values[name]

    def aggregate(self, func: str, field: str) -> float:
        data = self.field(field)
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
