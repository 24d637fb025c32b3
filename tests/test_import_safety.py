"""Tests that importing loadkit keeps Jupyter kernels safe from locust and gevent."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import loadkit

CHECK = (
    "import sys, loadkit\n"
    "{touch}\n"
    "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
    "assert not bad, bad\n"
)


@pytest.mark.parametrize(
    "touch",
    [
        "",
        "loadkit.BatchSpec, loadkit.GeneratedBatch, loadkit.ConfigError",
        "import loadkit.wire, loadkit.generators, loadkit.errors, loadkit.distributions",
        "import loadkit.options, loadkit.records, loadkit.thresholds, loadkit.cli",
    ],
)
def test_import_loadkit_never_imports_locust_or_gevent(touch):
    """A fresh interpreter importing loadkit (and its public names) has no locust or gevent."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(touch=touch)], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_only_the_locust_adapter_imports_locust_or_gevent():
    """Outside loadkit/locust/ (and the old loadkit/locust_users.py path and the packaged
    locustfile, which re-export it), no module of loadkit imports locust or gevent, at any depth
    of the code."""
    root = Path(loadkit.__file__).parent
    adapter = {root / "locust_users.py", root / "locustfiles" / "stream.py"}  # + the locustfile
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in adapter or (root / "locust") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(root)}: {n}" for n in names
                      if n.split(".")[0] in ("locust", "gevent")
                      or n == "loadkit.locust" or n.startswith("loadkit.locust.")]
    assert not found, found
