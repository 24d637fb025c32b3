"""Internal: a shareable, self-contained HTML report of one run (``loadkit report RUN_DIR``).

:func:`write_report` writes ``report.html`` and the charts it shows as PNG files next to it.
The page answers first: a verdict (``id="verdict"``: thresholds, violations, seal rate), the
headline figures of the summary (``id="headline"``), a capacity search's answer; then the
charts that matter for this run, then the detail tables; sections with nothing to show are
one line, and the options and run.json are key/value tables in collapsed ``<details>``.
Every number is written by :mod:`loadkit.humanize`; images are inline (base64 PNG), nothing
is fetched, any secret is redacted, and it prints on A4. Figures are drawn on plain
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from loadkit import __version__, analysis, plots
from loadkit import humanize as hz
from loadkit.errors import RecordsError
from loadkit.records import atomic_write

__all__ = ["PLOTS", "REDACTED", "headline_html", "redact", "write_report"]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"secret|token|passw|authori[sz]ation|api[_-]?key|(^|_)key$|cookie",
                          re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\btr_(?:dev|prod|stg|staging|preview|test)_[A-Za-z0-9_]+|"
                           r"(?i:bearer)\s+[^\s\"',;]+")

PLOTS: dict[str, Callable[..., Any]] = {
    "throughput": plots.throughput,
    "latency_over_time": plots.latency_over_time,
    "stall_over_time": plots.stall_over_time,
    "seal_outcomes": plots.seal_outcomes,
    "latency_cdf": plots.latency_cdf,
    "stall_vs_size": plots.stall_vs_size,
    "dedupe": plots.dedupe,
}
"""File stem → plot function, in the order the charts appear; a chart is drawn only when the
run has something to show in it (:func:`_charts` says why not, in one line)."""

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


# --- cells and tables --------------------------------------------------------------------

_SHARE = re.compile(r"(share|_rate|fraction|relative|^change$|^ci_(low|high)$)")


def _fmt(value: Any, column: str = "") -> str:
    """A cell for people: shares as %, ms columns as ms, the rest by humanize.value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return hz.MISSING
    if isinstance(value, (float, np.floating)) and math.isnan(float(value)):
        return hz.MISSING
    name = column.lower()
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)):
        if _SHARE.search(name) and "per_s" not in name:
            return hz.share(value)
        percentile = name.startswith("p") and name[1:].replace(".", "").isdigit()
        if name.endswith("_ms") or percentile or name in ("mean", "max", "min"):
            return f"{float(value):.1f}" if abs(float(value)) < 10 else hz.count(value)
        if name.endswith("per_s") and "mb" not in name:
            return hz.number(value, 4) if abs(float(value)) < 1000 else hz.count(value)
    return hz.value(value)


def _label(text: Any) -> str:
    """A column or row name for people: ``items_per_s`` → ``items/s``, ``_`` → space."""
    out = str(text)
    for a, b in (("_per_s", "/s"), ("mb/s", "MB/s"), ("_ms", " (ms)"), ("_", " ")):
        out = out.replace(a, b)
    return out


def _table(data: pd.DataFrame | pd.Series, caption: str | None = None, *,
           label_rows: bool = True) -> str:
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    frame = frame.copy()
    index = [", ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in frame.index]
    columns = [str(c) for c in frame.columns]
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in columns)
    name = html.escape(_label(data.index.name)) if data.index.name else ""
    body = []
    for idx, row in zip(index, frame.itertuples(index=False), strict=True):
        cells = "".join(
            f"<td>{html.escape(_fmt(v, c if len(columns) > 1 or c not in ('', 'value') else idx))}"
            "</td>" for c, v in zip(columns, row, strict=True))
        body.append(f"<tr><th>{html.escape(_label(idx) if label_rows else idx)}</th>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<table>{cap}<thead><tr><th>{name}</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table (values already redacted)."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td class=l>{html.escape(_plain(v))}</td>"
                   "</tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) if value else hz.MISSING
    if isinstance(value, str):
        return value if value else "(empty)"
    return hz.value(value)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys (``server_stats.batches_sealed``), in key order."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k in sorted(value, key=str):
            out += _flatten(value[k], f"{prefix}{k}.")
        return out or [(prefix.rstrip("."), "(none)")]
    return [(prefix.rstrip("."), value)]


def _line(text: str) -> str:
    return f'<p class="none">{html.escape(text)}</p>'


# --- the parts of the page -----------------------------------------------------------------


def _threshold_rows(run: analysis.Run) -> tuple[list[tuple[str, float, str]], str]:
    """(threshold, measured, result) rows of the run's thresholds, and where they came from."""
    from loadkit import thresholds as th  # noqa: PLC0415

    given = th.threshold_texts(run.options.get("threshold") or run.options.get("thresholds"))
    note = "the run's thresholds (run.json options)"
    if not given:
        given, note = list(th.DEFAULT_THRESHOLDS), "no thresholds were set: the CI defaults"
    rows = []
    for text in given:
        try:
            (result,) = th.evaluate([text], run.batches)
            rows.append((result.threshold.text, result.value,
                         "✓ pass" if result.passed else "✗ FAIL"))
        except ValueError as exc:  # ThresholdError is a ValueError
            rows.append((str(text), math.nan, f"invalid: {exc}"))
    return rows, note


def _measured(text: str, value: float) -> str:
    if math.isnan(value):
        return "no data"
    return hz.number(value, 4) + (" ms" if text.split(maxsplit=1)[0].endswith("_ms)") else "")


def _verdict(run: analysis.Run, rows: list[tuple[str, float, str]], note: str,
             figs: Any, capacity: bool) -> str:
    m = figs.metrics
    failed = [r for r in rows if not r[2].startswith("✓")]
    violations = int(m["violations"])
    if capacity:
        state, word = "info", "CAPACITY SEARCH"
    elif not m["batches"]:
        state, word = "fail", "NO BATCHES"
    elif failed or violations:
        state, word = "fail", "FAILED"
    else:
        state, word = "pass", "PASSED"
    facts = [f"thresholds {len(rows) - len(failed)} of {len(rows)} passed"
             + ("" if note.startswith("the run") else " (CI defaults)"),
             f"{hz.count(violations)} contract violation{'s' if violations != 1 else ''}",
             f"{hz.share(m['seal_rate'])} of batches sealed"]
    items = "".join(f"<li>✗ {html.escape(t)}: measured {html.escape(_measured(t, v))}</li>"
                    for t, v, _r in failed)
    return (f'<section id="verdict" class="verdict {state}"><div class="word">{word}</div>'
            f'<div class="facts">{html.escape(" · ".join(facts))}</div>'
            + (f'<ul class="failed">{items}</ul>' if items else "") + "</section>")


def _cards(figs: Any) -> list[tuple[str, str, str]]:
    """(label, value, detail) of each headline figure."""
    m = figs.metrics
    total = figs.latency.get("total", {})
    intended = figs.latency.get("from intended")
    cards = [
        ("throughput", hz.rate(m["items_per_s"], "items/s"),
         f"{hz.mb_per_s(m['mb_per_s'])} · {hz.rate(m['batches_per_s'], 'batches/s')}"),
        ("batches", hz.count(m["batches"]),
         f"{hz.share(m['seal_rate'])} sealed · {hz.count(figs.after_retry)} after retry · "
         f"{hz.count(figs.never)} never"),
        ("total latency p95", hz.ms(total.get("p95")),
         f"p50 {hz.ms(total.get('p50'))} · p99 {hz.ms(total.get('p99'))}"),
    ]
    if intended:
        cards.append(("p95 from intended start", hz.ms(intended["p95"]),
                      f"p50 {hz.ms(intended['p50'])} · p99 {hz.ms(intended['p99'])}"))
    cards += [
        ("stall", hz.share(figs.stall_share), "of stream time waiting on the target"
         + ("" if math.isnan(figs.write_share) else f" · writing {hz.share(figs.write_share)}")),
        ("items", hz.count(m["items"]), f"{hz.size(m['bytes'])} sent in "
         f"{hz.duration(m['duration_s'])}"),
        ("retries", hz.count(m["retries"]), f"{hz.count(m['rate_limited'])} × 429 · "
         f"{hz.count(m['dropped'])} dropped"),
    ]
    return cards


def headline_html(run: analysis.Run) -> str:
    """The verdict and the headline figures as an HTML fragment (a Run's Jupyter repr)."""
    from loadkit.summary import figures  # noqa: PLC0415

    figs = figures(run.batches)
    rows, note = _threshold_rows(run)
    return (f"<div class=loadkit-run><style>{_CSS_CARDS}</style><p><b>loadkit run "
            f"{html.escape(run.run_id)}</b> <span class=sub>{html.escape(str(run.path))}"
            f"</span></p>{_verdict(run, rows, note, figs, False)}{_headline(figs)}</div>")


def _headline(figs: Any) -> str:
    cards = "".join(f'<div class="card"><div class="k">{html.escape(k)}</div>'
                    f'<div class="v">{html.escape(v)}</div><div class="d">{html.escape(d)}'
                    "</div></div>" for k, v, d in _cards(figs))
    return f'<section id="headline" class="cards">{cards}</section>'


def _charts(run: analysis.Run, figs: Any, resolution: float) -> tuple[dict[str, bytes],
                                                                        list[str]]:
    """The charts worth drawing for this run (PNG bytes by stem), and one line for each
    chart left out, saying why."""
    m = figs.metrics
    if not m["batches"]:
        return {}, ["no batches: nothing to chart"]
    skip: dict[str, str] = {}
    if not (figs.stall_share > 0):
        skip["stall_over_time"] = ("no stall: every write went straight into the socket "
                                   "(the target kept up)")
        skip["stall_vs_size"] = ""
    elif run.batches["run_count"].nunique() < 3:
        skip["stall_vs_size"] = ""
    if figs.first_try == m["batches"] and not m["dropped"]:
        skip["seal_outcomes"] = "every batch sealed on the first try"
    if not figs.faults_injected:
        skip["dedupe"] = "no faults injected: dedupe had nothing to catch"
    if m["batches"] < 3:
        skip["latency_cdf"] = ""
    out = {}
    for stem, func in PLOTS.items():
        if stem in skip:
            continue
        fig = Figure(figsize=(8, 3.4), layout="constrained")
        ax = fig.add_subplot()
        if "resolution" in func.__code__.co_varnames:
            func(run, ax, resolution=resolution)
        else:
            func(run, ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        out[stem] = buf.getvalue()
    return out, [why for why in skip.values() if why]


def _img(stem: str, data: bytes) -> str:
    return (f'<figure><img alt="{stem}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}"><figcaption class="note">{stem}.png'
            "</figcaption></figure>")


def _details(run: analysis.Run, rows: list[tuple[str, float, str]], note: str,
             figs: Any) -> list[str]:
    m = figs.metrics
    out = ["<h2>Thresholds</h2>", f'<p class="note">{html.escape(note)}</p>',
           '<table><thead><tr><th>threshold</th><th>measured</th><th>result</th></tr></thead>'
           "<tbody>" + "".join(
               f'<tr class="{"ok" if r.startswith("✓") else "bad"}"><th>{html.escape(t)}</th>'
               f"<td>{html.escape(_measured(t, v))}</td><td>{html.escape(r)}</td></tr>"
               for t, v, r in rows) + "</tbody></table>"]
    if not m["batches"]:
        return [*out, _line("no batch records: no latency, seals, dedupe or backpressure to "
                            "show")]
    lat = analysis.latency(run)
    lat = lat[lat["count"] > 0]
    out += ["<h2>Latency (ms)</h2>",
            '<p class="note">exact percentiles over every batch; <i>total</i> from the actual '
            "start, <i>total from intended</i> from the intended start (open model).</p>",
            _table(lat)]
    seals = analysis.seal_outcomes(run)
    seals = seals[seals["batches"] > 0]
    out += ["<h2>Seals</h2>", _table(seals)]
    causes = analysis.seal_causes(run)
    out.append(_table(causes, "causes of late or missing seals") if len(causes) else
               _line("no late or missing seals"))
    out.append("<h2>Dedupe</h2>")
    if figs.faults_injected or figs.dedupe_reported:
        dd = analysis.dedupe(run)
        out += ['<p class="note">first-try batches compare exactly; retried batches are '
                "counted, not compared.</p>", _table(dd[dd["batches"] > 0])]
    else:
        out.append(_line("no faults injected, and the target reported no duplicates"))
    out.append("<h2>Retries</h2>")
    if m["retries"]:
        causes_s = pd.Series(figs.retry_causes, name="attempts", dtype="int64")
        causes_s.index.name = "why the earlier attempt ended"
        out.append(_table(causes_s, f"{hz.count(m['retries'])} retries"))
    else:
        out.append(_line("no retries"))
    out += ["<h2>Backpressure</h2>", _table(analysis.backpressure(run).rename("value"))]
    out.append("<h2>Rate limiting</h2>")
    out.append(_table(analysis.rate_limiting(run).rename("value")) if m["rate_limited"] else
               _line("no rate limiting (no 429 answers)"))
    workers = analysis.by_worker(run)
    if len(workers) > 1:
        out += ["<h2>Per worker</h2>", _table(workers)]
    cross = analysis.crosscheck(run)
    out.append("<h2>Cross-check against the server's counters</h2>")
    out.append(_table(cross) if cross is not None and len(cross) else
               _line("run.json holds no server counters (the run did not use the embedded "
                     "reference server)"))
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
    steps = _capacity_steps(cap.steps)
    return [
        "<h2>Capacity</h2>",
        f'<p id="capacity-answer"><b>{html.escape(answer_text(cap.answer))}</b></p>',
        f'<figure><img alt="capacity" src="data:image/png;base64,'
        f'{base64.b64encode(buf.getvalue()).decode()}"><figcaption class="note">capacity.png'
        "</figcaption></figure>",
        _table(steps, "one row per step, in the order they ran"),
    ]


def _capacity_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """The step table a person reads: what each step offered and got, and why it failed."""
    from loadkit import humanize  # noqa: PLC0415

    rows = {
        "offered": steps["offered_items_per_s"].map(lambda v: humanize.rate(v, "items/s")),
        "achieved": steps["achieved_items_per_s"].map(lambda v: humanize.rate(v, "items/s")),
        "MB/s": steps["achieved_mb_per_s"].map(humanize.mb_per_s),
        "p95 from intended": steps["p95_ms"].map(humanize.ms),
        "stall": steps["stall_share"].map(humanize.share),
        "dropped": steps["drop_rate"].map(humanize.share),
        "429s": steps["rate_limited"].map(humanize.count),
        "failed": steps["error_rate"].map(humanize.share),
        "generator CPU": steps["client_cpu"].map(humanize.share),
        "held": steps["held"].map(lambda v: "held" if v else "FAILED"),
        "why": [("; ".join(f) if isinstance(f, list) else "") or "–"
                for f in steps["failed_on"]],
    }
    return pd.DataFrame(rows, index=steps.index.rename("step"))


def _when(epoch: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(epoch), tz=dt.UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return str(epoch) if epoch is not None else "–"


_CSS_CARDS = """
.verdict{border-radius:8px;padding:.8em 1.2em;margin:1em 0;border:2px solid}
.verdict.pass{background:#eaf7ef;border-color:#2e8b57}.verdict.fail{background:#fdeeee;
border-color:#c0392b}.verdict.info{background:#eef3fb;border-color:#2c6fbb}
.verdict .word{font-size:1.6em;font-weight:700}.verdict.pass .word{color:#1f6b41}
.verdict.fail .word{color:#a02c1f}.verdict.info .word{color:#1d4f8a}
.verdict ul{margin:.4em 0 0;padding-left:1.2em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:.7em;
margin:1em 0}.card{border:1px solid #ddd;border-radius:8px;padding:.6em .9em;background:#fff}
.card .k{color:#666;font-size:.85em}.card .v{font-size:1.5em;font-weight:600;margin:.1em 0}
.card .d{color:#555;font-size:.85em}.sub{color:#666}
"""

_CSS = _CSS_CARDS + """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;color:#222;
max-width:1200px;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.1em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f4f4f4}tbody th{text-align:left;font-weight:normal;background:#fafafa}
td.l{text-align:left}tr.bad td,tr.bad th{color:#a02c1f;font-weight:600}
caption{text-align:left;font-weight:bold;padding:.3em 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:.5em}
figure{margin:0}img{max-width:100%;border:1px solid #eee}
.note{color:#666;font-size:.9em}.warn{color:#a05a00}.none{color:#555;font-style:italic}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
@page{size:A4;margin:12mm}
@media print{body{margin:0;max-width:none;font-size:10pt}.charts{display:block}
figure,table,.verdict,.cards{break-inside:avoid}h2{break-after:avoid}}
"""


def write_report(run_dir: str | Path | analysis.Run, out_dir: str | Path | None = None,
                 *, resolution: str | float | None = None) -> Path:
    """Write ``report.html`` and one PNG per chart shown to ``out_dir`` (default
    ``RUN_DIR/report``); return the HTML file's path."""
    from loadkit.summary import figures  # noqa: PLC0415

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
    figs = figures(run.batches)

    pngs, left_out = _charts(run, figs, res)
    for stem, data in pngs.items():
        atomic_write(out / f"{stem}.png", data)
    rows, note = _threshold_rows(run)
    capacity = _capacity(run, out)
    target = meta.get("target") or meta.get("target_url") or meta.get("host") or hz.MISSING
    if isinstance(target, dict):
        target = str(target.get("url") or target)
    target = target if isinstance(target, str) else redact(str(target), secrets)
    locust = meta.get("locust") if isinstance(meta.get("locust"), dict) else {}
    users = locust.get("num_users")
    sub = [f"target {target}" + (" (embedded reference server)"
                                 if meta.get("embedded_server") else ""),
           f"started {_when(meta.get('started_at'))}",
           hz.duration(figs.metrics["duration_s"]),
           ", ".join(x for x in (f"{meta['model']} model" if meta.get("model") else "",
                                f"{users:,} users" if isinstance(users, int) else "") if x)]
    notes = "".join(f'<li class="warn">{html.escape(redact(n, secrets))}</li>'
                    for n in run.notes)
    about = [("run id", run.run_id), ("directory", str(run.path)),
             ("records from", run.source), ("started", _when(meta.get("started_at"))),
             ("ended", _when(meta.get("ended_at"))), ("target", target),
             ("loadkit", meta.get("loadkit_version", hz.MISSING)),
             ("locust", meta.get("locust_version", hz.MISSING)),
             ("schema version", meta.get("schema_version", hz.MISSING)),
             ("report", f"loadkit {__version__}, time buckets of {hz.number(res)} s")]
    sections = [
        f"<h1>loadkit run {html.escape(run.run_id)}</h1>",
        f'<p class="sub">{html.escape(" · ".join(s for s in sub if s))}</p>',
        _verdict(run, rows, note, figs, bool(capacity)),
        _headline(figs),
        f'<ul class="notes">{notes}</ul>' if notes else "",
        *capacity,
        "<h2>Charts</h2>",
        '<div class="charts">' + "".join(_img(s, d) for s, d in pngs.items()) + "</div>",
        *(_line(why) for why in left_out),
        *_details(run, rows, note, figs),
        "<h2>Run</h2>",
        "<details><summary>options (secrets redacted)</summary>"
        + _kv(_flatten(meta.get("options") or {})) + "</details>",
        "<details><summary>run.json (secrets redacted)</summary>"
        + _kv(_flatten({k: v for k, v in meta.items() if k != "options"})) + "</details>",
        "<details><summary>about this report</summary>" + _kv(about) + "</details>",
    ]
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>loadkit run {html.escape(run.run_id)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(sections)}</body></html>")
    for secret in secrets:  # last line of defence: a key from the environment, anywhere
        page = page.replace(secret, REDACTED)
    path = out / "report.html"
    atomic_write(path, page)
    return path
