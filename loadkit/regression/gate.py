"""Internal: compare a candidate run with a baseline, figure by figure, and gate on the result.

:func:`compare` gives, per key figure of :data:`~loadkit.regression.figures.FIGURES`, the
baseline, the candidate, the change, its 95 % bootstrap interval and a verdict; :func:`gate`
adds the pass/fail decision of ``loadkit check --baseline`` (exit code 3 when a gated figure
is worse beyond its tolerance with confidence: the whole interval beyond it).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loadkit.errors import LoadkitError
from loadkit.regression.bootstrap import (
    RESAMPLES,
    block_indices,
    design_effect,
    percentile_draws,
    percentile_point,
    ratio_draws,
)
from loadkit.regression.digest import Digest, run_digest
from loadkit.regression.figures import DEFAULT_GATE, FIGURE_KEYS, FIGURES, Figure, figure
from loadkit.vocabulary import ExitCode

__all__ = [
    "CONFIDENCE",
    "VERDICTS",
    "GateResult",
    "ToleranceError",
    "compare",
    "format_table",
    "gate",
    "parse_tolerances",
]

CONFIDENCE = 0.95
"""The interval's coverage: the 2.5 % and 97.5 % points of the bootstrap draws."""
VERDICTS = ("worse", "better", "same", "missing", "no data")
"""``worse``/``better``: the whole interval is beyond the tolerance on that side; ``same``:
it is not; ``missing``: the baseline (or the candidate) lacks the figure — reported, never a
failure; ``no data``: the candidate has no batches at all (a failure when gated)."""


class ToleranceError(LoadkitError, ValueError):
    """A ``--tolerance`` that does not parse or names an unknown figure (exit code 2)."""


_TOL_RE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.()]+)\s*=\s*(?P<value>[^=]+?)\s*$")
_NUMBER_RE = re.compile(r"^(?P<number>\d[\d_]*\.?\d*|\.\d+)\s*(?P<pct>%)?$")


def parse_tolerances(texts: Iterable[str] | Mapping[str, Any] | str | None
                     ) -> dict[str, float | None]:
    """``['p95(total_ms)=10%', 'error_rate=0.5%', 'mb_per_s=off']`` → figure → tolerance
    (None: ``off``, not gated). A percentage is a relative change for rates and latencies and
    percentage points for shares (``error_rate=0.5%`` allows +0.005)."""
    if texts is None:
        return {}
    if isinstance(texts, str):
        texts = [texts]
    pairs: list[tuple[str, Any, str]] = []
    if isinstance(texts, Mapping):
        pairs = [(str(k), v, f"{k}={v}") for k, v in texts.items()]
    else:
        for text in texts:
            for part in (p.strip() for p in str(text).replace("\n", ";").split(";")):
                if not part:
                    continue
                m = _TOL_RE.match(part)
                if not m:
                    raise ToleranceError(f"tolerance {part!r} does not parse; expected "
                                         "FIGURE=VALUE, e.g. 'p95(total_ms)=10%' or "
                                         "'error_rate=0'")
                pairs.append((m.group("key"), m.group("value"), part))
    out: dict[str, float | None] = {}
    for key, value, text in pairs:
        if key not in FIGURE_KEYS:
            raise ToleranceError(f"tolerance {text!r}: unknown figure {key!r}; expected one "
                                 "of: " + ", ".join(FIGURE_KEYS))
        out[key] = _tolerance_value(value, text)
    return out


def _tolerance_value(value: Any, text: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        m = _NUMBER_RE.match(str(value).strip())
        if not m:
            raise ToleranceError(f"tolerance {text!r}: {value!r} is not a tolerance; expected "
                                 "a number >= 0, a percentage (10%) or off")
        d = decimal.Decimal(m.group("number").replace("_", ""))
        number = float(d / 100 if m.group("pct") else d)
    if not (number >= 0 and math.isfinite(number)):
        raise ToleranceError(f"tolerance {text!r}: must be a number >= 0")
    return number


def _gated(tolerances: Mapping[str, float | None] | None) -> dict[str, float]:
    """The gate: the defaults, changed (or switched off) by the given tolerances."""
    out: dict[str, float | None] = dict(DEFAULT_GATE)
    out.update(tolerances or {})
    return {k: v for k, v in out.items() if v is not None}


# --- measuring ---------------------------------------------------------------------------


def _point(d: Digest, fig: Figure) -> float:
    if fig.kind == "percentile":
        hist = d.histogram(fig.field)
        return math.nan if hist is None else percentile_point(*hist, fig.percentile)
    if fig.kind == "count":
        return d.total(fig.numerator) if d.batches else math.nan
    num, den = d.total(fig.numerator), d.total(fig.denominator)
    return num * fig.scale / den if den > 0 else math.nan


def _draws(d: Digest, fig: Figure, rng: np.random.Generator, idx: np.ndarray,
           resamples: int) -> np.ndarray:
    if fig.kind == "percentile":
        hist = d.histogram(fig.field)
        if hist is None:
            return np.full(resamples, np.nan)
        draws = percentile_draws(rng, *hist, fig.percentile, resamples)
        above = d.windows.get(f"above_p{fig.percentile:g}({fig.field})")
        counted = d.windows.get(f"n({fig.field})")
        if above is None or counted is None:
            return draws
        factor = math.sqrt(design_effect(above, counted, idx))
        point = _point(d, fig)
        if point > 0 and bool(np.all(draws > 0)):
            # stretched on a log scale: a latency stays above 0 however clustered the slow
            # batches (stretched linearly, a 4 s run's draws went below 0 and the interval
            # of the change read -1,737 % … +480 %)
            return point * (draws / point) ** factor
        return point + factor * (draws - point)
    if fig.kind == "count":
        return np.full(resamples, _point(d, fig))
    return ratio_draws(d.windows[fig.numerator] * fig.scale, d.windows[fig.denominator], idx)


def _change(cand: Any, base: Any, relative: bool) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        if relative:
            return cand / base - 1
        return cand - base


def _verdict(fig: Figure, lo: float, hi: float, tol: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "missing"
    worse_high = not fig.higher_is_better  # a rise is worse for latencies, errors …
    if worse_high:
        if lo > tol:
            return "worse"
        if hi < -tol:
            return "better"
    else:
        if hi < -tol:
            return "worse"
        if lo > tol:
            return "better"
    return "same"


def compare(candidate: Any, baseline: Any,
            tolerances: Mapping[str, float | None] | Iterable[str] | None = None, *,
            resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Every key figure of ``candidate`` against ``baseline`` (each a Run, a run directory, a
    baseline.json path or a Digest), one row per figure.

    Columns: ``verdict``, ``label``, ``unit``, ``baseline``, ``candidate``, ``change``
    (relative for rates and latencies, absolute for shares, per-batch figures and
    violations: see ``relative``), ``ci_low``/``ci_high`` (the 95 % bootstrap interval of the
    change), ``tolerance`` (given, else the figure's default) and ``gated``. Same inputs and
    ``seed``, same table.
    """
    base, cand = run_digest(baseline), run_digest(candidate)
    given = tolerances if isinstance(tolerances, Mapping) else parse_tolerances(tolerances)
    gated = _gated(given)
    rng = np.random.default_rng(seed)
    base_idx = block_indices(rng, base.n_windows, resamples)
    cand_idx = block_indices(rng, cand.n_windows, resamples)
    rows = {}
    for fig in FIGURES:
        b, c = _point(base, fig), _point(cand, fig)
        db = _draws(base, fig, rng, base_idx, resamples)
        dc = _draws(cand, fig, rng, cand_idx, resamples)
        change = _change(c, b, fig.relative) if b != 0 or not fig.relative else math.nan
        draws = _change(dc, db, fig.relative)
        draws = draws[np.isfinite(draws)]
        if math.isnan(change) or draws.size < resamples // 2:
            lo = hi = math.nan
        else:
            lo, hi = (float(x) for x in np.percentile(
                draws, [50 * (1 - CONFIDENCE), 100 - 50 * (1 - CONFIDENCE)]))
        tol = given.get(fig.key) if given.get(fig.key) is not None else fig.default_tolerance
        verdict = "no data" if cand.batches == 0 else _verdict(fig, lo, hi, float(tol or 0))
        rows[fig.key] = {
            "verdict": verdict, "label": fig.label, "unit": fig.unit, "baseline": b,
            "candidate": c, "change": change, "ci_low": lo, "ci_high": hi,
            "tolerance": float(tol or 0), "gated": fig.key in gated,
            "relative": fig.relative,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "figure"
    out.attrs["baseline"] = base
    out.attrs["candidate"] = cand
    return out


# --- the table ---------------------------------------------------------------------------


def _num(v: float) -> str:
    """A number for people: thousands separators, never scientific notation."""
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:,.1f}"
    if a >= 1:
        return f"{v:,.2f}"
    return f"{v:,.3f}" if a >= 0.001 or v == 0 else f"{v:,.6f}"


def _value(fig: Figure, v: float) -> str:
    if v is None or math.isnan(v):
        return "—"
    if fig.unit == "share":
        return f"{v * 100:,.2f} %"
    if fig.unit == "ms":
        return f"{_num(v)} ms"
    if fig.unit == "items/s":
        return f"{v:,.0f}"
    if fig.unit == "count":
        return f"{v:,.0f}"
    if fig.unit == "per batch":
        return f"{v:,.3f}"
    return _num(v)


def _delta(fig: Figure, v: float, sign: bool = True) -> str:
    if v is None or math.isnan(v):
        return "—"
    s = "+" if sign else ""
    if fig.relative:
        return f"{v * 100:{s},.1f} %"
    if fig.unit == "share":
        return f"{v * 100:{s},.2f} pp"
    if fig.unit == "count":
        return f"{v:{s},.0f}"
    return f"{v:{s},.3f}"


def _interval(fig: Figure, lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "—"
    if fig.kind == "count":
        return "exact"
    return f"{_delta(fig, lo)} … {_delta(fig, hi)}"


def _describe(d: Digest) -> str:
    return (f"{d.source or d.run_id} (run {d.run_id}, {d.batches:,} batches, "
            f"{d.duration_s:,.1f} s)")


def _settings_notes(base: Digest, cand: Digest) -> list[str]:
    keys = sorted(set(base.settings) | set(cand.settings))
    diffs = [f"{k} {base.settings.get(k, '—')} → {cand.settings.get(k, '—')}" for k in keys
             if k in base.settings and k in cand.settings
             and str(base.settings[k]) != str(cand.settings[k])]
    if not diffs:
        return []
    return ["note: the runs' settings differ (compared anyway): " + "; ".join(diffs)]


def format_table(frame: pd.DataFrame, *, title: str | None = None) -> str:
    """The comparison as plain text: a verdict line first, then one row per figure (verdict
    first), then the two runs and any differing settings."""
    worse = [k for k in frame.index if frame.at[k, "verdict"] == "worse"]
    better = [k for k in frame.index if frame.at[k, "verdict"] == "better"]
    missing = [k for k in frame.index if frame.at[k, "verdict"] == "missing"]
    if title is None:
        title = (f"comparison: {len(worse)} worse, {len(better)} better, "
                 f"{len(frame) - len(worse) - len(better) - len(missing)} same"
                 + (f", {len(missing)} missing" if missing else "")
                 + (f" — worse: {', '.join(worse)}" if worse else ""))
    head = ("verdict", "figure", "baseline", "candidate", "change", "95 % interval",
            "tolerance", "gate")
    rows = [head]
    for key in frame.index:
        r = frame.loc[key]
        fig = figure(str(key))
        rows.append((
            str(r["verdict"]), str(key), _value(fig, r["baseline"]),
            _value(fig, r["candidate"]), _delta(fig, r["change"]),
            _interval(fig, r["ci_low"], r["ci_high"]), _delta(fig, r["tolerance"], False),
            "gated" if r["gated"] else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = {2, 3, 4, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    lines = [title, line(head), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in rows[1:]]
    base, cand = frame.attrs.get("baseline"), frame.attrs.get("candidate")
    if isinstance(base, Digest) and isinstance(cand, Digest):
        lines.append(f"baseline:  {_describe(base)}")
        lines.append(f"candidate: {_describe(cand)}")
        lines += _settings_notes(base, cand)
    return "\n".join(lines)


# --- the gate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """A candidate run gated against a baseline: what ``loadkit check --baseline`` and
    ``loadkit smoke --baseline`` print, record and turn into an exit code."""

    frame: pd.DataFrame
    """:func:`compare`'s table (one row per figure)."""
    failures: tuple[str, ...] = field(default=())
    """Gated figures worse beyond their tolerance (or with no data)."""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> ExitCode:
        """0 when no gated figure is worse beyond its tolerance, else 3."""
        return ExitCode.OK if self.passed else ExitCode.THRESHOLDS_FAILED

    @property
    def baseline(self) -> Digest:
        return self.frame.attrs["baseline"]

    @property
    def candidate(self) -> Digest:
        return self.frame.attrs["candidate"]

    @property
    def table(self) -> str:
        """The plain-text table, its first line the verdict."""
        gated = int(self.frame["gated"].sum())
        if self.passed:
            title = (f"regression check: passed — no gated figure worse beyond its tolerance "
                     f"({gated} gated, {len(self.frame)} compared)")
        else:
            parts = []
            for key in self.failures:
                r = self.frame.loc[key]
                fig = figure(key)
                if r["verdict"] == "no data":
                    parts.append(f"{key}: the candidate has no batches")
                    continue
                parts.append(f"{key} {_delta(fig, r['change'])} (95 % interval "
                             f"{_interval(fig, r['ci_low'], r['ci_high'])}, tolerance "
                             f"{_delta(fig, r['tolerance'], False)})")
            title = (f"regression check: FAILED (exit code {int(ExitCode.THRESHOLDS_FAILED)})"
                     " — " + "; ".join(parts))
        return format_table(self.frame, title=title)

    def as_meta(self) -> dict[str, Any]:
        """JSON-ready summary for run.json: passed, the baseline, and one row per figure."""
        def plain(v: Any) -> Any:
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            if isinstance(v, (float, np.floating)):
                return None if math.isnan(v) else float(v)
            return v

        rows = [{"figure": str(k), **{c: plain(self.frame.at[k, c]) for c in (
            "verdict", "baseline", "candidate", "change", "ci_low", "ci_high", "tolerance",
            "gated")}} for k in self.frame.index]
        return {"passed": self.passed, "baseline": self.baseline.source,
                "baseline_run_id": self.baseline.run_id, "failures": list(self.failures),
                "figures": rows}


def gate(candidate: Any, baseline: Any,
         tolerances: Mapping[str, float | None] | Iterable[str] | None = None, *,
         resamples: int = RESAMPLES, seed: int = 0) -> GateResult:
    """Gate ``candidate`` against ``baseline`` (as :func:`compare`): it fails when a gated
    figure — by default p95(total_ms) and items_per_s at 10 %, error_rate, seal_rate and
    violations at 0 — is worse beyond its tolerance with 95 % confidence (the whole interval
    beyond it), or when the candidate has no batches. A figure missing from the baseline is
    reported as ``missing`` and never fails."""
    frame = compare(candidate, baseline, tolerances, resamples=resamples, seed=seed)
    failing = frame["gated"] & frame["verdict"].isin(("worse", "no data"))
    return GateResult(frame=frame, failures=tuple(str(k) for k in frame.index[failing]))
