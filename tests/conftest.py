"""Shared fixtures. Keep this minimal: fixtures of one area live in that area's conftest."""

from __future__ import annotations

import pytest

from loadkit.server import ReferenceServer


@pytest.fixture(scope="session")
def reference_server():
    """A started reference server (own process, default knobs) shared by the whole session."""
    with ReferenceServer(mode="process") as server:
        yield server
