"""Tests that importing loadkit keeps Jupyter kernels safe from locust and gevent."""

import subprocess
import sys

import pytest

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
