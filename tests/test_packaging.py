"""What ships in the package: the locustfile, the notebooks, the version (the wheel: .ci/wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import loadkit
from loadkit import notebooks, runner
from loadkit.locustfiles import STREAM

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(loadkit.__file__).resolve().parent
LOCUST = str(Path(sys.executable).with_name("locust"))


def clean_env() -> dict[str, str]:
    """The environment without the developer's TRIGGER_* / LOCUST_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "LOCUST_"))}


def loadkit_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``loadkit`` command line in ``cwd`` to completion."""
    return subprocess.run([sys.executable, "-m", "loadkit", *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)


def test_version_is_declared_once(tmp_path):
    """pyproject reads the version from loadkit.__version__, which loadkit --version prints."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "loadkit.__version__"}
    out = loadkit_cli("--version", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, f"loadkit {loadkit.__version__}\n")


def test_locustfile_prints_the_packaged_locustfile(tmp_path):
    """loadkit locustfile prints the locustfile inside the package, the one loadkit.run uses."""
    out = loadkit_cli("locustfile", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path == STREAM == runner.LOCUSTFILE
    assert path.is_file()
    assert PACKAGE in path.parents


def test_repository_locustfile_gives_locust_the_packaged_users(tmp_path):
    """locustfiles/stream.py and the packaged locustfile offer locust the same users."""
    lists = [subprocess.run([LOCUST, "-f", str(path), "--list"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60, check=False)
             for path in (REPO / "locustfiles" / "stream.py", STREAM)]
    assert [p.returncode for p in lists] == [0, 0], [p.stderr[-2000:] for p in lists]
    assert lists[0].stdout == lists[1].stdout
    assert "BatchUser" in lists[1].stdout


@pytest.mark.slow
def test_packaged_locustfile_runs_from_any_folder(tmp_path):
    """locust -f "$(loadkit locustfile)" runs headless from a folder outside the checkout."""
    proc = subprocess.run([LOCUST, "-f", str(STREAM), "--headless", "-u", "1", "-r", "1",
                           "-t", "2s", "--items", "10", "--payload-bytes", "32"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "results").iterdir()
    assert (run_dir / "records.parquet").is_file()


def test_notebooks_copies_every_notebook(tmp_path):
    """loadkit notebooks DIR makes DIR and copies quickstart, analyze_run and capacity into it."""
    out = loadkit_cli("notebooks", "mine/notebooks", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "mine" / "notebooks"
    assert sorted(p.name for p in folder.iterdir()) == sorted(notebooks.NAMES)
    for name in notebooks.NAMES:
        assert (folder / name).read_bytes() == (PACKAGE / "notebooks" / name).read_bytes()
    assert len(out.stdout.splitlines()) == len(notebooks.NAMES)
    assert set(notebooks.NAMES) == {"quickstart.ipynb", "analyze_run.ipynb", "capacity.ipynb"}


def test_notebooks_never_overwrites_a_file(tmp_path):
    """A notebook already in DIR is kept as it is (and said so); the missing ones are copied."""
    (tmp_path / "quickstart.ipynb").write_text("my own edits", encoding="utf-8")
    out = loadkit_cli("notebooks", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "quickstart.ipynb").read_text(encoding="utf-8") == "my own edits"
    assert (tmp_path / "capacity.ipynb").read_bytes() == notebooks.source("capacity.ipynb") \
        .read_bytes()
    kept = [line for line in out.stdout.splitlines() if "not overwritten" in line]
    assert len(kept) == 1
    assert "quickstart.ipynb" in kept[0]


def test_notebooks_into_a_folder_under_a_file_is_one_line_exit_2(tmp_path):
    """A DIR that cannot be made (its parent is a file) is one line on stderr and exit 2."""
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    out = loadkit_cli("notebooks", "a-file/notebooks", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("loadkit notebooks: error: cannot write to a-file/notebooks")


def test_notebooks_into_a_read_only_folder_is_one_line_exit_2(tmp_path, read_only_dir):
    """A DIR that cannot be written (mode 0555, or a read-only mount for root, whom modes do not
    stop) is one line on stderr and exit 2, and stays empty."""
    folder = tmp_path / "read-only"
    why = read_only_dir(folder)
    out = loadkit_cli("notebooks", str(folder), cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith(f"loadkit notebooks: error: cannot write to {folder}")
    assert why in out.stderr
    assert list(folder.iterdir()) == []
