"""Tests that the benchmark scripts still run (tiny sizes; their figures are not asserted):
each prints its figure line and the spread line under it, writes its --json figures, and
bench/run_all.py gathers them into its table and results.json."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run(argv: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:]],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("argv", "figure"),
    [
        (["generators.py", "--batches", "3", "--items", "100", "--rounds", "2"],
         "ratio loadkit / orjson chunks:"),
        (["analysis.py", "--records", "2000", "--repeat", "1"], "ratio loadkit / bare:"),
        (["server.py", "--items", "2000", "--repeat", "1", "--big-mb", "4", "--big-seconds", "5"],
         "ratio reference/minimal:"),
        (["client.py", "--items", "2000", "--payload-bytes", "100", "--runs", "1"],
         "loadkit ÷ pre-encoded one piece:"),
        (["client_vs_curl.py", "--items", "2000", "--rounds", "2"], "ratio loadkit ÷ "),
        (["locust_user.py", "--seconds", "2", "--rounds", "1"],
         "ratio loadkit / (FastHttpUser + generation):"),
        (["locust_user.py", "--seconds", "1", "--rounds", "1", "--experiments"],
         "httpx floor: (HttpxFloor + generation) / (FastHttpUser + generation):"),
        (["capacity.py", "--runs", "1", "--step-seconds", "1", "--ingest-rate", "4000",
          "--start", "2000"], "ratio search wall ÷ Σ step durations (target ≤ 1.1):"),
        (["master.py", "--workers", "1", "--start", "2000", "--max-steps", "2",
          "--step-seconds", "2", "--finish", "--rounds", "1"], "master absorbs "),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else "",
)
def test_bench_script_runs(argv, figure, tmp_path):
    """Each bench script runs with tiny sizes to its figure line, the spread line directly
    under it, and its --json figures (the old flags --runs/--repeat still work)."""
    out = tmp_path / "figures.json"
    result = run([*argv, "--json", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(figure)), None)
    assert at is not None, result.stdout[-2000:]
    assert lines[at + 1].startswith("spread ("), lines[at: at + 2]
    written = json.loads(out.read_text())
    targets = [f for f in written["figures"] if f["target"] is not None]
    assert targets, written
    for fig in targets:
        assert {"name", "median", "min", "max", "q1", "q3", "met", "rounds"} <= set(fig)
        assert fig["rounds"] >= 1
        assert fig["min"] <= fig["q1"] <= fig["median"] <= fig["q3"] <= fig["max"], fig
        assert isinstance(fig["met"], bool)


def test_run_all_quick(tmp_path):
    """run_all.py --quick --only: each bench in its own process, a table of its targets
    and results.json with every figure."""
    out = tmp_path / "results.json"
    result = run(["run_all.py", "--quick", "--only", "generators", "analysis",
                  "--out", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    head = next(i for i, line in enumerate(result.stdout.splitlines())
                if line.startswith("bench "))
    table = result.stdout.splitlines()[head:]
    assert table[0].split() == ["bench", "figure", "median", "spread", "(min–max,", "IQR)",
                                "target", "met"]
    rows = [line for line in table[2:] if line.startswith(("generators ", "analysis "))]
    assert len(rows) == 2, table
    assert "ratio loadkit / orjson chunks" in rows[0]
    assert ">= 1.0" in rows[0]
    assert rows[0].split()[-1] in ("yes", "no")
    assert "ratio loadkit / bare" in rows[1]
    data = json.loads(out.read_text())
    assert [b["name"] for b in data["benches"]] == ["generators", "analysis"]
    assert all(b["exit_code"] == 0 for b in data["benches"])
    assert [t["figure"] for t in data["targets"]] == ["ratio loadkit / orjson chunks",
                                                      "ratio loadkit / bare"]
    gen = data["benches"][0]["figures"][0]
    assert gen["rounds"] == 3
    assert gen["target"] == ">= 1.0"
    assert data["machine"]["cpus"] >= 1


def test_rounds_helper_alternates_and_summarises():
    """bench/_rounds.py: a discarded warm-up round, ABBA order, per-round ratios, median
    and quartiles, the spread line."""
    sys.path.insert(0, str(BENCH))
    try:
        import _rounds  # noqa: PLC0415
    finally:
        sys.path.remove(str(BENCH))
    calls: list[str] = []
    counter = iter(range(100))

    def variant(name: str):
        def fn() -> int:
            calls.append(name)
            return next(counter)
        return fn

    got = _rounds.interleave({"a": variant("a"), "b": variant("b")}, 3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, AB, BA, AB
    assert got["a"] == [2, 5, 6]
    assert got["b"] == [3, 4, 7]
    assert len(got) == 3
    assert _rounds.ratios([2, 6], [4, 3]) == [0.5, 2.0]
    s = _rounds.spread([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.n, s.median, s.lo, s.hi, s.q1, s.q3) == (5, 3.0, 1.0, 5.0, 2.0, 4.0)
    assert _rounds.spread_line([1.0, 2.0, 3.0, 4.0, 5.0]) == \
        "spread (5 rounds): min–max 1.00–5.00, IQR 2.00–4.00"
    fig = _rounds.Figure("r", [0.8, 1.2, 1.0], _rounds.at_least(1.0))
    assert fig.median == 1.0
    assert fig.met is True
    assert _rounds.within(0.75, 1.25).met(1.3) is False
