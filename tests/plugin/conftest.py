"""The pytest plugin's tests: inner pytest sessions (pytester, in subprocesses, so that the
installed ``pytest11`` entry point loads the plugin as it does for a user)."""

from __future__ import annotations

import os

import pytest

PLANTED_KEY = "tr_dev_PLUGINCANARY_0123_4567_89ab"  # shaped unlike a real key on purpose
"""A distinctive secret key: no inner session's output may contain it."""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """The inner sessions inherit this environment: none of the developer's TRIGGER_* or
    LOCUST_* settings (a TRIGGER_API_URL would send loadkit_run to that target)."""
    for name in list(os.environ):
        if name.startswith(("TRIGGER_", "LOCUST_")):
            monkeypatch.delenv(name)
