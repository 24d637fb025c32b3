"""Run metrics: the figures of a whole run, defined once.

:func:`run_metrics` computes every figure below over a run's records (a pyarrow Table, a pandas
DataFrame, dicts or :class:`~loadkit.records.BatchRecord`). It is the one definition the
thresholds (``seal_rate >= 0.999``), :func:`loadkit.analysis.summary` (the same dict as a
pandas Series), the report and a notebook share, so they always agree.

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


Counts are ints; the rest floats, ``nan`` where there is no data (an empty run, or a field
that is null everywhere). ``dropped`` records (open model) are not batches: nothing was sent.
pandas is never imported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.vocabulary import FAILURE_OUTCOMES, SUCCESS_OUTCOMES, Outcome

__all__ = ["RUN_METRICS", "RecordColumns", "run_metrics"]

RUN_METRICS: tuple[str, ...] = (
    "batches", "dropped", "drop_rate", "cached", "sealed", "seal_rate", "failed",
    "error_rate", "violations", "batches_with_violations", "verify_failures", "rate_limited",
    "retries", "items", "items_requested", "items_deduplicated", "lines", "bytes",
    "duration_s", "batches_per_s", "items_per_s", "bytes_per_s", "mb_per_s",
)
"""The keys of :func:`run_metrics`, in its order (the module docstring defines each)."""


class RecordColumns:
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
        self.kept = ~self.outcome_in(Outcome.DROPPED.value)
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

    def strings(self, name: str) -> np.ndarray:
        """Column ``name`` as Python objects (strings, None where null), every row."""
        return self._objects(name)

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
    cols = records if isinstance(records, RecordColumns) else RecordColumns(records)
    kept = cols.kept
    batches = int(kept.sum())
    dropped = cols.n - batches

    def total(name: str) -> int:
        return int(cols.field(name).sum())

    sealed = int(cols.outcome_in(*SUCCESS_OUTCOMES).sum())
    failed = int(cols.outcome_in(*FAILURE_OUTCOMES).sum())
    items, nbytes = total("items_accepted"), total("bytes_sent")
    started, ended = cols.field("started_at"), cols.field("ended_at")
    duration = float(ended.max() - started.min()) if started.size and ended.size else math.nan
    verified = cols.numeric("verified")[cols.kept]
    out = {
        "batches": batches,
        "dropped": dropped,
        "drop_rate": _ratio(dropped, cols.n),
        "cached": int(cols.outcome_in(Outcome.CACHED.value).sum()),
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
