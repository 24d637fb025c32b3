"""Tests for ``loadkit options``: the list of run options locust's --help cannot show."""

import subprocess
import sys

from loadkit.options import OPTIONS


def test_options_lists_every_run_option_with_its_default():
    """Every option of the OPTIONS table appears as a flag with its help text."""
    out = subprocess.run([sys.executable, "-m", "loadkit", "options"], capture_output=True,
                         text=True, check=True).stdout
    for opt in OPTIONS:
        assert f"  {opt.flag}" in out
        assert opt.help in out
    assert "--payload-bytes (default 256)" in out


def test_options_group_filter():
    """--group shows one group only."""
    out = subprocess.run([sys.executable, "-m", "loadkit", "options", "--group", "server"],
                         capture_output=True, text=True, check=True).stdout
    assert "--server-ingest-rate" in out
    assert "--payload-bytes" not in out
