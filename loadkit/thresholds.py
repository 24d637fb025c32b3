"""Thresholds: small pass/fail expressions over a run's records (CI smoke runs).

One expression is ``METRIC OP NUMBER``:

- ``OP`` is one of ``<  <=  >  >=  ==  !=``;
- ``NUMBER`` is a decimal number (``2000``, ``0.999``, ``1e-3``, ``5_000``) or a
  percentage (``1%`` is 0.01);
- ``METRIC`` is either an aggregate of a numeric record field —
  ``p95(total_ms)``, ``p99.9(create_ms)``, ``median(stream_ms)``, ``mean(stall_fraction)``,
  ``min(…)``, ``max(…)``, ``sum(…)`` over any int/float/bool field of
  :class:`~loadkit.records.BatchRecord` — or a named run metric:

  one of :data:`~loadkit.metrics.RUN_METRICS` (``batches``, ``seal_rate``, ``error_rate``,
  ``items_per_s`` …), defined in :mod:`loadkit.metrics`, the one definition the thresholds,
  :func:`loadkit.analysis.summary`, the report and a notebook share.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from loadkit.errors import ThresholdError
from loadkit.metrics import RUN_METRICS, RecordColumns, run_metrics
from loadkit.vocabulary import ExitCode

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EXIT_THRESHOLDS_FAILED",
    "RUN_METRICS",
    "Threshold",
    "ThresholdCheck",
    "ThresholdResult",
    "check_thresholds",
    "evaluate",
    "format_table",
    "parse_threshold",
    "parse_thresholds",
    "run_metrics",
    "threshold_texts",
]

EXIT_THRESHOLDS_FAILED = ExitCode.THRESHOLDS_FAILED
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


def parse_threshold(text: str | Threshold) -> Threshold:
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


class _Measures:
    def __init__(self, records: Any) -> None:
        self.cols = RecordColumns(records)
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
        + (f" (exit code {int(EXIT_THRESHOLDS_FAILED)})" if failed else "")
    )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    """The thresholds of a run, evaluated: what locust runs, ``loadkit check`` and
    ``loadkit smoke`` print, record in run.json and turn into an exit code."""

    results: tuple[ThresholdResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def exit_code(self) -> ExitCode:
        """0 when every threshold passed, else :data:`EXIT_THRESHOLDS_FAILED` (3)."""
        return ExitCode.OK if self.passed else ExitCode.THRESHOLDS_FAILED

    @property
    def table(self) -> str:
        """The plain-text table (:func:`format_table`)."""
        return format_table(self.results)

    def as_meta(self) -> list[dict[str, Any]]:
        """JSON-ready rows for run.json: threshold, measured value, passed."""
        return [{"threshold": str(r.threshold), "value": r.value, "passed": r.passed}
                for r in self.results]


def check_thresholds(thresholds: Iterable[str | Threshold], records: Any, *,
                     out: TextIO | None = None) -> ThresholdCheck:
    """Parse, evaluate and (with ``out``) print thresholds over a run's records.

    The one sequence behind every pass/fail decision: a locust run's end, ``loadkit check``
    and ``loadkit smoke``. A malformed expression raises :class:`ThresholdError` (the
    callers' exit 2); the result's :attr:`~ThresholdCheck.exit_code` is 0 or 3.
    """
    check = ThresholdCheck(tuple(evaluate(thresholds, records)))
    if out is not None:
        out.write(check.table + "\n")
        out.flush()
    return check
