"""Internal: the end-of-run summary, a block of aligned lines headed ``loadkit summary``.

Printed after locust's tables at the end of a headless run, by ``loadkit smoke`` and
``loadkit capacity``, and the text repr of a :class:`~loadkit.analysis.Run`::

    loadkit summary  run 20250101T120000Z-ab12cd  ·  20.1 s  ·  closed model, 4 users
      batches      812          sealed 100 %   first try 99.8 %   after retry 2   never 0
      items        81,200       4.04 k items/s   1.19 MB/s   40.4 batches/s
      latency            p50        p95        p99        max
        create        1.2 ms     3.4 ms     5.6 ms     9.1 ms
      …
      thresholds: 5 passed, 0 failed
        ✓ seal_rate >= 0.999              1

The figures are :func:`loadkit.metrics.run_metrics` (the one definition) plus percentiles,
stall and write shares as :func:`loadkit.analysis.latency` and
:func:`loadkit.analysis.backpressure` define them; numbers are :mod:`loadkit.humanize`'s.
Works on a pyarrow Table, a DataFrame or dicts; never imports pandas itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadkit import humanize as hz
from loadkit.metrics import RecordColumns, run_metrics
from loadkit.vocabulary import Outcome

__all__ = ["MAX_LINES", "MODES", "Figures", "ThresholdLine", "figures", "summary_text",
           "threshold_lines", "threshold_value"]

MODES = ("none", "short", "full")
"""``--summary`` choices: nothing, a few lines, the whole block."""
MAX_LINES = 24
"""The block never has more lines than this."""

_LATENCY = (("create", "create_ms"), ("stream", "stream_ms"), ("total", "total_ms"),
            ("from intended", "total_from_intended_ms"))


@dataclass(frozen=True)
class ThresholdLine:
    """One threshold as the summary shows it: its text, measured value and verdict."""

    text: str
    value: float
    passed: bool


@dataclass(frozen=True)
class Figures:
    """What the summary (and the report's headline) shows, computed once from the records."""

    metrics: dict[str, Any]
    first_try: int
    after_retry: int
    never: int
    latency: dict[str, dict[str, float]]
    """Row label → ``p50``, ``p95``, ``p99``, ``max`` (ms); rows with no values left out."""
    stall_share: float
    write_share: float
    dedupe_expected: int
    dedupe_reported: int
    dedupe_mismatched: int
    faults_injected: int
    retry_causes: dict[str, int]
    rate_limit_wait_s: float

    @property
    def seal_share(self) -> float:
        return float(self.metrics["seal_rate"])


def _pcts(values: np.ndarray) -> dict[str, float]:
    got = np.percentile(values, [50, 95, 99, 100])
    return dict(zip(("p50", "p95", "p99", "max"), map(float, got), strict=True))


def figures(records: Any) -> Figures:
    """The summary's figures over ``records`` (a pyarrow Table, a DataFrame, dicts or
    BatchRecords)."""
    cols = records if isinstance(records, RecordColumns) else RecordColumns(records)
    m = run_metrics(cols)
    kept = cols.kept
    sealed = cols.numeric("sealed")[kept] == 1
    cached = cols.outcome_in(Outcome.CACHED.value)[kept]
    attempt = np.nan_to_num(cols.numeric("sealed_attempt")[kept], nan=1.0)
    first_try = int((sealed & ~cached & (attempt <= 1)).sum())
    after_retry = int((sealed & ~cached & (attempt > 1)).sum())
    latency = {}
    for label, column in _LATENCY:
        values = cols.field(column)
        if values.size:
            latency[label] = _pcts(values)
    stream = cols.numeric("stream_ms")[kept]
    streamed = np.nan_to_num(stream, nan=0.0) > 0
    stream_total = float(stream[streamed].sum())
    stall_total = float(np.nansum(cols.numeric("stall_ms")[kept][streamed]))
    writes = cols.numeric("write_ms")[kept][streamed]
    write_total = float(writes.sum()) if writes.size and not np.isnan(writes).any() else math.nan
    # dedupe: batches sent exactly once compare exactly (as analysis.dedupe's "all" row)
    first = (cols.numeric("attempts")[kept] == 1) & ~cached
    exp_d = np.nan_to_num(cols.numeric("expected_deduplicated")[kept][first])
    got_d = np.nan_to_num(cols.numeric("items_deduplicated")[kept][first])
    exp_a = np.nan_to_num(cols.numeric("expected_accepted")[kept][first])
    got_a = np.nan_to_num(cols.numeric("items_accepted")[kept][first])
    faults = sum(float(np.nansum(cols.numeric(f"fault_{k}")[kept]))
                 for k in ("duplicate", "gap", "shuffle", "malformed", "schema",
                           "out_of_range", "oversized"))
    causes: Counter[str] = Counter()
    reasons = cols.strings("retry_reasons")[kept] if m["retries"] or m["rate_limited"] else []
    for text in reasons:
        causes.update(r.strip() for r in str(text or "").split(",") if r.strip())
    return Figures(
        metrics=m, first_try=first_try, after_retry=after_retry,
        never=int(m["batches"]) - int(m["sealed"]),
        latency=latency,
        stall_share=stall_total / stream_total if stream_total > 0 else math.nan,
        write_share=write_total / stream_total if stream_total > 0 else math.nan,
        dedupe_expected=int(exp_d.sum()), dedupe_reported=int(got_d.sum()),
        dedupe_mismatched=int(((exp_d != got_d) | (exp_a != got_a)).sum()),
        faults_injected=int(faults), retry_causes=dict(causes.most_common()),
        rate_limit_wait_s=float(np.nansum(cols.numeric("rate_limit_wait_ms")[kept])) / 1000,
    )


def _header(meta: dict[str, Any], f: Figures) -> str:
    parts = [f"run {meta.get('run_id') or '?'}"]
    parts.append(hz.duration(f.metrics["duration_s"]))
    model = meta.get("model")
    users = (meta.get("locust") or {}).get("num_users") if isinstance(meta.get("locust"),
                                                                      dict) else None
    if model or users:
        who = f"{model} model" if model else ""
        if users:
            who += f"{', ' if who else ''}{users:,} user{'s' if users != 1 else ''}"
        parts.append(who)
    return "loadkit summary  " + "  ·  ".join(parts)


def threshold_value(line: ThresholdLine) -> str:
    """A threshold's measured value as the summary shows it (ms for a ``_ms`` field)."""
    text = hz.number(line.value, 4) if not math.isnan(line.value) else "no data"
    metric = line.text.split()[0]
    if metric.endswith("_ms)") and text != "no data":
        text += " ms"
    return text


def _threshold_lines(lines: Sequence[ThresholdLine], room: int, *,
                     failed_only: bool = False) -> list[str]:
    failed = sum(not t.passed for t in lines)
    head = f"  thresholds: {len(lines) - failed} passed, {failed} failed"
    if failed:
        head += " (exit code 3)"
    ordered = sorted(lines, key=lambda t: t.passed)  # failed first
    if failed_only:
        ordered = ordered[:failed]
    width = max((len(t.text) for t in ordered), default=0)
    shown = ordered if len(ordered) <= room else ordered[:max(room - 1, 0)]
    out = [head] + [f"    {'✓' if t.passed else '✗'} {t.text.ljust(width)}  {threshold_value(t)}"
                    for t in shown]
    if len(shown) < len(ordered):
        rest = ordered[len(shown):]
        out.append(f"    … {len(rest)} more ({sum(t.passed for t in rest)} passed)")
    return out


def _row(label: str, *cells: str) -> str:
    return f"  {label:<12} " + "   ".join(c for c in cells if c)


def _full(meta: dict[str, Any], f: Figures) -> list[str]:
    m = f.metrics
    batches = int(m["batches"])
    lines = [
        _row("batches", f"{hz.count(batches):<11}", f"sealed {hz.share(m['seal_rate'])}",
             f"first try {hz.share(f.first_try / batches if batches else math.nan)}",
             f"after retry {hz.count(f.after_retry)}", f"never {hz.count(f.never)}",
             f"cached {hz.count(m['cached'])}" if m["cached"] else ""),
        _row("items", f"{hz.count(m['items']):<11}", hz.rate(m["items_per_s"], "items/s"),
             hz.mb_per_s(m["mb_per_s"]), hz.rate(m["batches_per_s"], "batches/s")),
    ]
    if f.latency:
        lines.append(f"  {'latency':<17}" + "".join(f"{k:>11}" for k in
                                                      ("p50", "p95", "p99", "max")))
        for label, row in f.latency.items():
            lines.append(f"    {label:<15}" + "".join(f"{hz.ms(row[k]):>11}" for k in
                                                       ("p50", "p95", "p99", "max")))
    lines.append(_row("writes", f"stall {hz.share(f.stall_share)} of stream time",
                      "" if math.isnan(f.write_share) else
                      f"writing {hz.share(f.write_share)} (the client's own cost)"))
    if f.faults_injected or f.dedupe_expected or f.dedupe_reported:
        ok = f.dedupe_mismatched == 0
        lines.append(_row("dedupe", f"reported {hz.count(f.dedupe_reported)}",
                          f"expected {hz.count(f.dedupe_expected)}",
                          "✓ as expected" if ok else
                          f"✗ {hz.count(f.dedupe_mismatched)} "
                          + ("batch differs" if f.dedupe_mismatched == 1 else "batches differ"),
                          f"({hz.count(f.faults_injected)} faults injected)"))
    else:
        lines.append(_row("dedupe", "no faults injected, no duplicates reported"))
    causes = ", ".join(f"{k} {v:,}" for k, v in list(f.retry_causes.items())[:4])
    lines.append(_row("retries", f"{hz.count(m['retries'])}" + (f" ({causes})" if causes
                                                                else ""),
                      f"429s {hz.count(m['rate_limited'])}"
                      + (f" (waited {hz.duration(f.rate_limit_wait_s)})"
                         if m["rate_limited"] else "")))
    problems = [f"violations {hz.count(m['violations'])}", f"dropped {hz.count(m['dropped'])}"
                + (f" ({hz.share(m['drop_rate'])})" if m["dropped"] else ""),
                f"failed {hz.count(m['failed'])}"]
    if m["verify_failures"]:
        problems.append(f"verify failures {hz.count(m['verify_failures'])}")
    lines.append(_row("problems", *problems))
    return lines


def _short(meta: dict[str, Any], f: Figures) -> list[str]:
    m = f.metrics
    total = f.latency.get("total", {})
    return [
        f"  {hz.count(m['batches'])} batches, {hz.share(m['seal_rate'])} sealed  ·  "
        f"{hz.rate(m['items_per_s'], 'items/s')}  ·  {hz.mb_per_s(m['mb_per_s'])}  ·  total "
        f"p50 {hz.ms(total.get('p50'))}  p95 {hz.ms(total.get('p95'))}  "
        f"p99 {hz.ms(total.get('p99'))}",
        f"  violations {hz.count(m['violations'])}  ·  retries {hz.count(m['retries'])}  ·  "
        f"429s {hz.count(m['rate_limited'])}  ·  dropped {hz.count(m['dropped'])}  ·  "
        f"stall {hz.share(f.stall_share)}",
    ]


def _capacity_line(meta: dict[str, Any]) -> list[str]:
    cap = meta.get("capacity")
    if not isinstance(cap, dict) or "limited_by" not in cap:
        return []
    from loadkit.capacity_search.result import answer_text  # noqa: PLC0415

    return [_row("capacity", answer_text(cap))]


def summary_text(records: Any, meta: dict[str, Any] | None = None, *,
                 thresholds: Sequence[ThresholdLine] | None = None, mode: str = "full",
                 notes: Sequence[str] = ()) -> str:
    """The summary block of a run (no trailing newline); ``""`` for mode ``none``.

    ``meta`` is run.json (run id, model, users, a capacity answer); ``thresholds`` the run's
    evaluated thresholds (None or empty: the block says none were set)."""
    if mode not in MODES:
        raise ValueError(f"summary: {mode!r}; use one of {', '.join(MODES)}")
    if mode == "none":
        return ""
    meta = meta or {}
    f = figures(records)
    lines = [_header(meta, f)]
    lines += [f"  note: {n}" for n in notes[:2]]
    if not f.metrics["batches"]:
        lines.append("  no batches were recorded"
                     + (f" ({hz.count(f.metrics['dropped'])} scheduled starts dropped)"
                        if f.metrics["dropped"] else ""))
    else:
        lines += _full(meta, f) if mode == "full" else _short(meta, f)
    lines += _capacity_line(meta)
    lines += _missing_workers_line(meta)
    if thresholds:
        room = MAX_LINES - len(lines) - 1
        lines += _threshold_lines(thresholds, room, failed_only=mode == "short")
    elif mode == "full":
        lines.append("  thresholds: none set (--threshold 'p95(total_ms) < 2000' …)")
    return "\n".join(lines[:MAX_LINES])


def _missing_workers_line(meta: dict[str, Any]) -> list[str]:
    """Workers whose last records never reached the master, and what that can cost."""
    missing = meta.get("missing_workers") or []
    if not missing:
        return []
    names = ", ".join(str(w["worker_id"]) for w in missing[:2]) + (" …" if len(missing) > 2
                                                                  else "")
    bound = sum(int(w.get("may_be_missing_at_most") or 0) for w in missing)
    return [_row("workers", f"{len(missing)} lost before sending their last records "
                 f"({names}): up to {hz.count(bound)} records may be missing "
                 "(run.crosscheck() against the server)")]


def threshold_lines(results: Sequence[Any]) -> list[ThresholdLine]:
    """:class:`ThresholdLine` s from :class:`~loadkit.thresholds.ThresholdResult` s or the
    rows run.json keeps (``threshold``, ``value``, ``passed``)."""
    out = []
    for r in results:
        if isinstance(r, dict):
            value = r.get("value")
            out.append(ThresholdLine(str(r.get("threshold")),
                                     math.nan if value is None else float(value),
                                     bool(r.get("passed"))))
        else:
            out.append(ThresholdLine(str(r.threshold), float(r.value), bool(r.passed)))
    return out
