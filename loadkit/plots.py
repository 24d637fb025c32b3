"""Plots of a run (matplotlib only; the numbers come from :mod:`loadkit.analysis`).

Each function takes a :class:`~loadkit.analysis.Run` (or its records DataFrame) and an
optional ``ax``; it draws on that Axes (a new figure when none is given) and returns it.
:func:`dashboard` returns a Figure. Nothing here calls ``plt.show()``, selects a backend or
changes rcParams: in a notebook the figure shows itself; in scripts save it::

    ax = loadkit.plots.throughput(run)
    ax.figure.savefig("throughput.png")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from loadkit import analysis

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "capacity",
    "dashboard",
    "dedupe",
    "latency_cdf",
    "latency_over_time",
    "seal_outcomes",
    "stall_histogram",
    "stall_over_time",
    "stall_vs_size",
    "throughput",
]

_SCATTER_MAX = 20_000
"""Scatter plots draw at most this many points (an even sample) to stay fast."""

_ERROR = "#c0392b"
_COLORS = {"first_try": "#2e8b57", "after_retry": "#e0a526", "never": _ERROR,
           "cached": "#7f8c8d", "dropped": "#34495e"}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # noqa: PLC0415 - pyplot only when no Axes is given

    _, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    return ax


def _empty(ax: Axes, title: str, why: str = "no batches in this run") -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _title(run: Any, what: str) -> str:
    return f"{what} — {analysis._label(run, 'run')}"


def throughput(run: analysis.Run | pd.DataFrame, ax: Axes | None = None,
               resolution: str | float = "1s") -> Axes:
    """Items/s over time (by batch end), with failed batches per second on a second axis."""
    ax = _axes(ax)
    title = _title(run, "Throughput")
    tp = analysis.throughput(run, resolution)
    if tp.empty:
        return _empty(ax, title)
    x = tp.index.to_numpy(dtype=float)
    width = float(x[1] - x[0]) if len(x) > 1 else analysis.parse_resolution(resolution)
    rate = tp["items_per_s"].to_numpy(dtype=float)
    ax.step(np.append(x, x[-1] + width), np.append(rate, rate[-1]), where="post",
            color="#1f77b4", label="items/s")
    ax.set_xlabel("seconds since the first batch start")
    ax.set_ylabel("items/s (accepted)")
    ax.set_ylim(bottom=0)
    _thousands(ax.yaxis)
    ax.set_title(title)
    if tp["errors"].any():
        err = ax.twinx()
        ax.set_zorder(err.get_zorder() + 1)  # the line over the bars
        ax.patch.set_visible(False)
        err.bar(x, tp["errors_per_s"], width=width, align="edge", color=_ERROR, alpha=0.4,
                label="failed batches/s")
        err.set_ylabel("failed batches/s", color=_ERROR)
        err.set_ylim(bottom=0)
        handles = ax.get_legend_handles_labels()[0] + err.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left")
    else:
        ax.legend(loc="upper left", title="no failed batches")
    return ax


def latency_over_time(run: analysis.Run | pd.DataFrame, ax: Axes | None = None,
                      resolution: str | float = "1s", metric: str = "total_ms",
                      percentiles: tuple[float, ...] = (50, 95, 99)) -> Axes:
    """Latency percentiles of ``metric`` per time bucket (by batch end)."""
    ax = _axes(ax)
    title = _title(run, f"Latency over time ({metric})")
    lot = analysis.latency_over_time(run, resolution, metric, percentiles)
    if lot.empty or not lot["count"].any():
        return _empty(ax, title, "no batches" if lot.empty else f"no {metric} values")
    x = lot.index.to_numpy(dtype=float)
    for p in percentiles:
        label = analysis._pct_label(p)
        ax.plot(x, lot[label], marker=".", label=label)
    ax.plot(x, lot["max"], color="grey", linestyle=":", label="max")
    ax.set_xlabel("seconds since the first batch start")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def latency_cdf(run: analysis.Run | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Cumulative distribution of total latency from the actual and the intended start.

    The gap between the two curves is the coordinated omission a closed-model test hides
    (the intended-start curve exists only for open-model runs).
    """
    ax = _axes(ax)
    title = _title(run, "Latency CDF")
    df = analysis._sent(analysis._frame(run))
    drawn = False
    for column, label, style in (("total_ms", "from actual start", "-"),
                                 ("total_from_intended_ms", "from intended start", "--")):
        v = analysis._float(df[column]) if len(df) else np.array([])
        v = np.sort(v[~np.isnan(v)])
        if not v.size:
            continue
        y = np.arange(1, v.size + 1) / v.size
        ax.step(v, y, where="post", linestyle=style, label=f"{label} (n={v.size:,})")
        drawn = True
    if not drawn:
        return _empty(ax, title)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else
                                               f"{v:.2f}".rstrip("0")))
    ax.set_xlabel("total latency, ms (log)")
    _plain_log_ticks(ax.xaxis)
    ax.set_ylabel("share of batches ≤ x")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return ax


def stall_histogram(run: analysis.Run | pd.DataFrame, ax: Axes | None = None,
                    bins: int = 20) -> Axes:
    """Histogram of per-batch stall fraction (share of stream time the writer was blocked)."""
    ax = _axes(ax)
    title = _title(run, "Backpressure: stall fraction")
    dist = analysis.stall_distribution(run, bins)
    if not dist["batches"].sum():
        return _empty(ax, title, "no streamed batches")
    left = np.array([iv.left for iv in dist.index])
    ax.bar(left, dist["batches"], width=1.0 / bins, align="edge", color="#8e44ad",
           edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel("stall fraction (stall time ÷ stream time)")
    ax.set_ylabel("batches")
    ax.set_title(title)
    return ax


def stall_vs_size(run: analysis.Run | pd.DataFrame, ax: Axes | None = None,
                  by: str = "run_count") -> Axes:
    """Stall fraction of each streamed batch against its size (``run_count``,
    ``payload_bytes``, ``bytes_sent`` or ``lines_sent``); at most 20,000 points."""
    ax = _axes(ax)
    title = _title(run, f"Stall fraction vs {by}")
    df = analysis._frame(run)
    if len(df):
        df = df[df["stream_ms"].notna() & (df["stream_ms"] > 0)]
    if not len(df):
        return _empty(ax, title, "no streamed batches")
    if len(df) > _SCATTER_MAX:
        df = df.iloc[np.linspace(0, len(df) - 1, _SCATTER_MAX).astype(int)]
    sealed = df["sealed"].to_numpy(dtype=bool)
    x, y = df[by].to_numpy(dtype=float), df["stall_fraction"].to_numpy(dtype=float)
    ax.scatter(x[sealed], y[sealed], s=8, alpha=0.5, label="sealed")
    if (~sealed).any():
        ax.scatter(x[~sealed], y[~sealed], s=12, alpha=0.7, color=_ERROR, marker="x",
                   label="not sealed")
    ax.set_xlabel(by)
    ax.set_ylabel("stall fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def seal_outcomes(run: analysis.Run | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Batches sealed on the first try, after a retry, never, cached and dropped."""
    ax = _axes(ax)
    title = _title(run, "Seal outcomes")
    so = analysis.seal_outcomes(run)
    if not so["batches"].sum():
        return _empty(ax, title)
    labels = list(so.index)
    bars = ax.bar(labels, so["batches"], color=[_COLORS[k] for k in labels])
    ax.bar_label(bars, labels=[f"{n}\n{s:.1%}" for n, s in zip(so["batches"], so["share"],
                                                                 strict=True)], fontsize=8)
    ax.set_ylabel("batches")
    ax.margins(y=0.2)
    ax.set_title(title)
    return ax


def dedupe(run: analysis.Run | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Expected vs reported deduplicated items per injected fault kind (first-try batches);
    mismatched batches are named in the tick labels."""
    ax = _axes(ax)
    title = _title(run, "Dedupe: expected vs reported")
    table = analysis.dedupe(run)
    table = table[(table["batches"] > 0) & (table.index != "all")]
    if table.empty:
        return _empty(ax, title)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["expected_deduplicated"], width=0.4, label="expected",
           color="#95a5a6")
    ax.bar(x + 0.2, table["reported_deduplicated"], width=0.4, label="reported",
           color="#2980b9")
    ax.set_xticks(x, [f"{k}\n{m} mismatched" if m else k
                      for k, m in zip(table.index, table["mismatched"], strict=True)],
                  fontsize=8)
    for tick, m in zip(ax.get_xticklabels(), table["mismatched"], strict=True):
        if m:
            tick.set_color(_ERROR)
    ax.set_ylabel("items deduplicated")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return ax


def stall_over_time(run: analysis.Run | pd.DataFrame, ax: Axes | None = None,
                    resolution: str | float = "1s") -> Axes:
    """Stall share per time bucket (by batch end): stall time ÷ stream time of the batches
    that ended in it, the share of writing spent waiting on the target."""
    ax = _axes(ax)
    title = _title(run, "Backpressure: stall share over time")
    df = analysis._sent(analysis._frame(run))
    if len(df):
        df = df[df["stream_ms"].notna() & (df["stream_ms"] > 0)]
    if not len(df):
        return _empty(ax, title, "no streamed batches")
    seconds = analysis.parse_resolution(resolution)
    idx, _start, n = analysis._buckets(df, seconds)
    stall = np.bincount(idx, weights=np.nan_to_num(analysis._float(df["stall_ms"])), minlength=n)
    stream = np.bincount(idx, weights=analysis._float(df["stream_ms"]), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(stream > 0, stall / stream, np.nan) * 100
    x = np.arange(n) * seconds
    ax.step(np.append(x, x[-1] + seconds), np.append(share, share[-1]), where="post",
            color="#8e44ad", label="stall share")
    ax.set_xlabel("seconds since the first batch start")
    ax.set_ylabel("% of stream time waiting")
    ax.set_ylim(0, max(5.0, float(np.nanmax(share)) * 1.15 if np.isfinite(share).any()
                       else 5.0))
    ax.set_title(title)
    return ax


def dashboard(run: analysis.Run | pd.DataFrame, fig: Figure | None = None,
              resolution: str | float = "1s") -> Figure:
    """One figure: throughput, latency over time, latency CDF, stall histogram, stall vs
    size, seal outcomes."""
    if fig is None:
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig = plt.figure(figsize=(14, 12), layout="constrained")
    axes = fig.subplots(3, 2)
    throughput(run, axes[0, 0], resolution)
    latency_over_time(run, axes[0, 1], resolution)
    latency_cdf(run, axes[1, 0])
    stall_histogram(run, axes[1, 1])
    stall_vs_size(run, axes[2, 0])
    seal_outcomes(run, axes[2, 1])
    fig.suptitle(f"loadkit run {analysis._label(run, 'run')}")
    return fig


def capacity(result: Any, ax: Axes | None = None) -> Axes:
    """A capacity search (:class:`~loadkit.capacity_search.Capacity`): achieved vs offered items/s
    with the diagonal (what a target that keeps up would show) and the knee marked; p95
    latency from the intended start on a second axis, with the latency bound; the stall
    share as the points' labels. Steps that failed are drawn hollow."""
    ax = _axes(ax)
    steps = result.steps.sort_values("offered_items_per_s")
    title = "Capacity: achieved vs offered"
    if steps.empty:
        return _empty(ax, title, "the search ran no step")
    offered = steps["offered_items_per_s"].to_numpy(dtype=float)
    achieved = steps["achieved_items_per_s"].to_numpy(dtype=float)
    held = steps["held"].to_numpy(dtype=bool)
    top = float(max(offered.max(), achieved.max())) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1,
            label="achieved = offered")
    ax.plot(offered, achieved, color="#1f77b4", linewidth=1.2)
    ax.scatter(offered[held], achieved[held], color="#1f77b4", zorder=3, label="step held")
    ax.scatter(offered[~held], achieved[~held], facecolors="none", edgecolors=_ERROR,
               zorder=3, label="step failed")
    knee = result.knee
    if knee is not None:
        ax.axvline(knee, color="#2e8b57", linestyle="--", linewidth=1.2)
        ax.annotate(f"knee {knee:,.0f} items/s\n({result.limited_by})", xy=(knee, 0),
                    xytext=(-4, 8), textcoords="offset points", color="#2e8b57",
                    ha="right")
    ax.set_xlabel("offered items/s")
    ax.set_ylabel("achieved items/s")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    _thousands(ax.xaxis)
    _thousands(ax.yaxis)
    lat = ax.twinx()
    p95 = steps["p95_ms"].to_numpy(dtype=float)
    lat.plot(offered, p95, color="#e0a526", marker="s", markersize=4, linewidth=1,
             label="p95 from intended start (ms)")
    bound = steps["latency_bound_ms"].dropna()
    if not bound.empty:
        lat.axhline(float(bound.iloc[-1]), color="#e0a526", linestyle=":", linewidth=1,
                    label="latency bound")
    lat.set_ylabel("p95 latency from intended start (ms)")
    lat.set_ylim(bottom=0)
    _thousands(lat.yaxis)
    for x, y, stall in zip(offered, achieved, steps["stall_share"].to_numpy(dtype=float),
                           strict=True):
        if np.isfinite(stall) and stall >= 0.005:
            ax.annotate(f"stall {stall:.0%}", xy=(x, y), xytext=(3, -12),
                        textcoords="offset points", fontsize=7, color="grey")
    lines = ax.get_legend_handles_labels()
    more = lat.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    ax.set_title(f"{title} — {result.path.name}")
    return ax


def _plain_log_ticks(axis: Any) -> None:
    """Log-axis tick labels as plain numbers (5, 20, 1,000), never 2×10¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: PLC0415

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.10g}"))
    axis.set_minor_formatter(NullFormatter())


def _thousands(axis: Any) -> None:
    """Tick labels with thousands separators, never scientific notation."""
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
