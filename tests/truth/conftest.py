"""Fixtures for the measurement-truth tests: a work directory per test and the table rows."""

from __future__ import annotations

import pytest

from tests.truth.scenarios import format_table


@pytest.fixture
def report():
    """Print a scenario's rows (configured | measured | error) when the test ends."""
    rows: list[dict] = []
    yield rows.extend
    if rows:
        print("\n" + format_table(rows))
