"""Internal: a shareable, self-contained HTML report of one run (``loadkit report RUN_DIR``).

:func:`write_report` writes ``report.html`` (summary tables, thresholds, the run's options
with any secret redacted, every plot embedded as a base64 PNG: one file to attach or mail)
and the same plots as PNG files next to it. Figures are drawn on plain
:class:`matplotlib.figure.Figure` objects: no pyplot, no backend, no global state touched.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from loadkit import __version__, analysis, plots
from loadkit.errors import RecordsError
from loadkit.records import atomic_write

__all__ = ["PLOTS", "REDACTED", "redact", "write_report"]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"secret|token|passw|authori[sz]ation|api[_-]?key|(^|_)key$|cookie",
                          re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\btr_(?:dev|prod|stg|staging|preview|test)_[A-Za-z0-9_]+|"
                           r"(?i:bearer)\s+[^\s\"',;]+")

PLOTS: dict[str, Callable[..., Any]] = {
    "throughput": plots.throughput,
    "latency_over_time": plots.latency_over_time,
    "latency_cdf": plots.latency_cdf,
    "stall_histogram": plots.stall_histogram,
    "stall_vs_size": plots.stall_vs_size,
    "seal_outcomes": plots.seal_outcomes,
    "dedupe": plots.dedupe,
}
"""File stem → plot function; each becomes ``<stem>.png`` and a figure in the HTML."""

_RESOLUTIONS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def redact(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """``value`` with secrets replaced by ``[redacted]``: values under secret-looking names
    (``secret_key``, ``token``, ``authorization`` …), Trigger.dev keys (``tr_dev_…``),
    ``Bearer …`` credentials and any string in ``secrets``, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_NAME.search(str(k)) and v not in (None, "", [])
                    else redact(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def _env_secrets() -> tuple[str, ...]:
    raw = os.environ.get("TRIGGER_SECRET_KEY", "")
    return tuple(k.strip() for k in raw.split(",") if len(k.strip()) >= 8)


def _resolution(run: analysis.Run) -> float:
    """A bucket size giving at most ~120 buckets over the run."""
    duration = float(analysis.summary(run)["duration_s"])
    duration = duration if duration > 0 else 0.0  # nan for an empty run
    return next((r for r in _RESOLUTIONS if duration / r <= 120), _RESOLUTIONS[-1])


def _fmt(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "–"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.4g}" if abs(v) >= 1e-3 else f"{v:.3g}"
    return str(value)


def _table(data: pd.DataFrame | pd.Series, caption: str | None = None) -> str:
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    frame = frame.copy()
    frame.index = [", ".join(map(str, i)) if isinstance(i, tuple) else str(i)
                   for i in frame.index]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    name = html.escape(str(data.index.name or "")) if data.index.name else ""
    rows = "".join(
        "<tr><th>" + html.escape(idx) + "</th>"
        + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr><th>{name}</th>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _thresholds(run: analysis.Run) -> tuple[str, str]:
    """(HTML table, note) of the run's thresholds evaluated over its records."""
    from loadkit import thresholds as th  # noqa: PLC0415

    given = run.options.get("threshold") or run.options.get("thresholds") or []
    given = [given] if isinstance(given, str) else list(given)
    note = "thresholds of the run (run.json options)"
    if not given:
        given, note = list(th.DEFAULT_THRESHOLDS), "no thresholds in run.json: the defaults"
    rows = []
    for text in given:
        try:
            (result,) = th.evaluate([text], run.batches)
            rows.append((result.threshold.text, result.value,
                         "pass" if result.passed else "FAIL"))
        except ValueError as exc:  # ThresholdError is a ValueError
            rows.append((str(text), math.nan, f"invalid: {exc}"))
    frame = pd.DataFrame(rows, columns=["threshold", "measured", "result"]).set_index(
        "threshold")
    return _table(frame), note


def _figures(run: analysis.Run, resolution: float) -> dict[str, bytes]:
    out = {}
    for stem, func in PLOTS.items():
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.add_subplot()
        if "resolution" in func.__code__.co_varnames:
            func(run, ax, resolution=resolution)
        else:
            func(run, ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        out[stem] = buf.getvalue()
    return out


def _capacity(run: analysis.Run, out: Path) -> list[str]:
    """A capacity search's answer, its picture and its steps (nothing for other runs)."""
    from loadkit.capacity_search import CAPACITY_JSON, Capacity  # noqa: PLC0415
    from loadkit.capacity_search.result import answer_text  # noqa: PLC0415

    if not (run.path / CAPACITY_JSON).exists():
        return []
    try:
        cap = Capacity.load(run.path)
    except RecordsError as exc:
        return ["<h2>Capacity</h2>", f'<p class="warn">{html.escape(str(exc))}</p>']
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    plots.capacity(cap, ax=fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(out / "capacity.png", buf.getvalue())
    steps = cap.steps.drop(columns=["window_start", "failed_on"])
    return [
        "<h2>Capacity</h2>",
        f'<p id="capacity-answer"><b>{html.escape(answer_text(cap.answer))}</b></p>',
        f'<figure><img alt="capacity" src="data:image/png;base64,'
        f'{base64.b64encode(buf.getvalue()).decode()}"><figcaption class="note">capacity.png'
        "</figcaption></figure>",
        _table(steps, "one row per step, in the order they ran"),
    ]


def _when(epoch: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(epoch), tz=dt.UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return str(epoch) if epoch is not None else "–"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
thead th{background:#f4f4f4}tbody th{text-align:left;font-weight:normal;background:#fafafa}
caption{text-align:left;font-weight:bold;padding:.3em 0}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#666;font-size:.9em}.warn{color:#a05a00}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
"""


def write_report(run_dir: str | Path | analysis.Run, out_dir: str | Path | None = None,
                 *, resolution: str | float | None = None) -> Path:
    """Write ``report.html`` and one PNG per plot to ``out_dir`` (default
    ``RUN_DIR/report``); return the HTML file's path."""
    run = run_dir if isinstance(run_dir, analysis.Run) else analysis.load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordsError(f"cannot create the report folder {out}: "
                           f"{exc.strerror or exc}") from None
    res = analysis.parse_resolution(resolution) if resolution is not None else _resolution(run)
    secrets = _env_secrets()
    meta = redact(run.meta, secrets)

    pngs = _figures(run, res)
    for stem, data in pngs.items():
        atomic_write(out / f"{stem}.png", data)

    thresholds_html, thresholds_note = _thresholds(run)
    cross = analysis.crosscheck(run)
    cross_html = (_table(cross) if cross is not None else
                  '<p class="note">run.json holds no server stats snapshot (the run did not '
                  "use the embedded reference server, or its writer did not record one).</p>")
    target = meta.get("target") or meta.get("target_url") or meta.get("host") or "–"
    head = {
        "run id": run.run_id, "directory": str(run.path), "records from": run.source,
        "started": _when(meta.get("started_at")), "ended": _when(meta.get("ended_at")),
        "target": target if isinstance(target, str) else redact(str(target), secrets),
        "loadkit": meta.get("loadkit_version", "–"), "locust": meta.get("locust_version", "–"),
        "schema version": meta.get("schema_version", "–"),
        "report by": f"loadkit {__version__}, buckets of {res:g} s",
    }
    notes = "".join(f'<li class="warn">{html.escape(redact(n, secrets))}</li>'
                    for n in run.notes)
    sections = [
        f"<h1>loadkit run {html.escape(run.run_id)}</h1>",
        _table(pd.Series(head, name="", dtype=object)),
        f"<ul>{notes}</ul>" if notes else "",
        *_capacity(run, out),
        "<h2>Summary</h2>", _table(analysis.summary(run).rename("value")),
        "<h2>Thresholds</h2>", f'<p class="note">{html.escape(thresholds_note)}</p>',
        thresholds_html,
        "<h2>Latency (ms)</h2>",
        '<p class="note">exact percentiles over every batch; <i>total</i> from the actual '
        "start, <i>total_from_intended</i> from the intended start (open model).</p>",
        _table(analysis.latency(run)),
        "<h2>Seals</h2>", _table(analysis.seal_outcomes(run)),
        _table(analysis.seal_causes(run), "causes of late or missing seals"),
        "<h2>Dedupe (first-try batches)</h2>", _table(analysis.dedupe(run)),
        "<h2>Backpressure</h2>", _table(analysis.backpressure(run).rename("value")),
        "<h2>Rate limiting</h2>", _table(analysis.rate_limiting(run).rename("value")),
        "<h2>Per worker</h2>", _table(analysis.by_worker(run)),
        "<h2>Cross-check against the server's counters</h2>", cross_html,
        "<h2>Plots</h2>",
        *(f'<figure><img alt="{stem}" src="data:image/png;base64,'
          f'{base64.b64encode(data).decode()}"><figcaption class="note">{stem}.png'
          "</figcaption></figure>" for stem, data in pngs.items()),
        "<h2>Options (secrets redacted)</h2>",
        f"<pre>{html.escape(_json(meta.get('options', {})))}</pre>",
        "<h2>run.json</h2>", f"<pre>{html.escape(_json(meta))}</pre>",
    ]
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>loadkit run {html.escape(run.run_id)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(sections)}</body></html>")
    for secret in secrets:  # last line of defence: a key from the environment, anywhere
        page = page.replace(secret, REDACTED)
    path = out / "report.html"
    atomic_write(path, page)
    return path


def _json(value: Any) -> str:
    import json  # noqa: PLC0415

    return json.dumps(value, indent=2, sort_keys=True, default=str)
