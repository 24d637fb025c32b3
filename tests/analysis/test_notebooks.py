"""The notebooks, executed with papermill on a fresh short run, and committed without outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit import notebooks

NOTEBOOKS = Path(notebooks.__file__).resolve().parent  # the package's: the only copies
KEY = "tr_dev_NotebookCanary_5e1f0b77"


def _papermill(src: Path, out: Path, cwd: Path, **params: str) -> dict:
    """Execute a notebook with papermill in a subprocess; return the executed notebook."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as in Jupyter
    env.update(TRIGGER_SECRET_KEY=KEY, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "papermill", str(src), str(out), "--kernel", "python3",
            "--cwd", str(cwd)]
    for name, value in params.items():
        argv += ["-p", name, value]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", notebooks.NAMES)
def test_notebooks_are_committed_without_outputs(name):
    """No outputs or execution counts in the committed notebooks; a parameters cell exists."""
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert any("parameters" in c["metadata"].get("tags", []) for c in code)


@pytest.mark.slow
def test_quickstart_then_analyze_run(tmp_path):
    """quickstart runs a short load test; analyze_run reads that run; no key in any output."""
    quick = _papermill(NOTEBOOKS / "quickstart.ipynb", tmp_path / "quick.ipynb", tmp_path,
                       run_time="2s", users="2", spawn_rate="2", items="20",
                       payload_bytes="64", results_dir=str(tmp_path / "results"))
    runs = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert len(runs) == 1
    assert (runs[0] / "records.parquet").exists()
    assert (runs[0] / "report" / "report.html").exists()
    images = [o for c in quick["cells"] for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the dashboard was not drawn"
    stderr = "".join(t for c in quick["cells"] for o in c.get("outputs", [])
                     if o.get("name") == "stderr" for t in o.get("text", []))
    assert len(stderr.replace("\r", "\n").splitlines()) <= 2, stderr[:2000]  # no bar lines
    progress = [o for c in quick["cells"] for o in c.get("outputs", [])
                if "<progress" in "".join(o.get("data", {}).get("text/html", []))]
    assert len(progress) == 1  # one display, updated in place

    analyzed = _papermill(NOTEBOOKS / "analyze_run.ipynb", tmp_path / "analyze.ipynb",
                          tmp_path, results_dir=str(tmp_path / "results"))
    errors = [o for c in analyzed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    for path in [tmp_path / "quick.ipynb", tmp_path / "analyze.ipynb",
                 *runs[0].rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_capacity_notebook_finds_the_ingest_cap(tmp_path):
    """capacity.ipynb runs a search to its answer and draws the capacity picture."""
    out = _papermill(NOTEBOOKS / "capacity.ipynb", tmp_path / "capacity.ipynb", tmp_path,
                     start="4000", step_seconds="2", ingest_rate="10000",
                     results_dir=str(tmp_path / "results"))
    errors = [o for c in out["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(t for c in out["cells"] for o in c.get("outputs", [])
                   for t in (o.get("text") or o.get("data", {}).get("text/plain") or []))
    assert "capacity " in text
    assert "limited by" in text
    images = [o for c in out["cells"] for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the capacity picture was not drawn"
    runs = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert (runs[0] / "capacity.json").exists()
    assert KEY.encode() not in (tmp_path / "capacity.ipynb").read_bytes()
