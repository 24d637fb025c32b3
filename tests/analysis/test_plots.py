"""Plots render to PNG under Agg, draw on a given Axes, and never show or touch global state."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from loadkit import plots
from loadkit.analysis import load_run

AXES_PLOTS = [plots.throughput, plots.latency_over_time, plots.latency_cdf,
              plots.stall_histogram, plots.stall_vs_size, plots.seal_outcomes, plots.dedupe]


@pytest.fixture(autouse=True)
def _no_show(monkeypatch):
    """plt.show() fails the test; figures are closed afterwards."""
    def show(*args, **kwargs):
        raise AssertionError("plots must never call plt.show()")

    monkeypatch.setattr(plt, "show", show)
    yield
    plt.close("all")


def _png_ok(path):
    """The PNG exists, is not tiny and is not a blank canvas."""
    assert path.stat().st_size > 5_000
    pixels = mpimg.imread(path)
    assert pixels[..., :3].std() > 0.02


@pytest.mark.parametrize("plot", AXES_PLOTS, ids=lambda f: f.__name__)
def test_plot_draws_on_given_axes_and_renders(plot, run_a, tmp_path):
    """Each plot draws on the Axes it is given, returns it, and renders a non-blank PNG."""
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    assert plot(run_a, ax) is ax
    assert ax.get_title()
    out = tmp_path / f"{plot.__name__}.png"
    fig.savefig(out)
    _png_ok(out)


@pytest.mark.parametrize("plot", AXES_PLOTS, ids=lambda f: f.__name__)
def test_plot_makes_its_own_axes_and_takes_a_dataframe(plot, run_b):
    """Without an Axes a plot makes a figure; a records DataFrame works as well as a Run."""
    ax = plot(run_b.batches)
    assert ax.figure is not None
    assert "run-b" in ax.get_title()


def test_latency_cdf_shows_intended_and_actual(run_b):
    """An open-model run gets both curves."""
    ax = plots.latency_cdf(run_b, Figure().add_subplot())
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("actual" in s for s in labels)
    assert any("intended" in s for s in labels)


def test_dashboard(run_a, tmp_path):
    """The dashboard is one figure of six panels."""
    fig = plots.dashboard(run_a, Figure(figsize=(12, 10), layout="constrained"))
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= 6
    fig.savefig(tmp_path / "dash.png")
    _png_ok(tmp_path / "dash.png")


def test_empty_run_plots_say_so(make_run, meta_for, tmp_path):
    """A run with no batches still renders, with a note instead of data."""
    run_dir = make_run("empty", [], meta_for("empty"))
    with pytest.warns(UserWarning, match="no batch records"):
        run = load_run(run_dir)
    fig = plots.dashboard(run, Figure(figsize=(12, 10)))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no batches" in t for t in texts)
    fig.savefig(tmp_path / "empty.png")


def test_importing_plots_selects_no_backend_and_changes_no_rcparams():
    """Importing loadkit.plots leaves pyplot unimported and rcParams untouched."""
    code = ("import sys, matplotlib\n"
            "rc = matplotlib.rcParams\n"
            "snap = lambda: {k: rc._get(k) for k in rc.keys()}  # _get: no backend resolution\n"
            "before = snap()\n"
            "import loadkit.plots, loadkit.report\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            "assert snap() == before\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
