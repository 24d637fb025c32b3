"""The loadkit summary block at the end of real headless locust runs."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow

SMALL = ("--items", "20", "--payload-bytes", "64")


def test_summary_after_locust_tables(run_locust):
    """Default: the full block on stdout, after locust's tables, thresholds ✓/✗ with values."""
    run = run_locust("--headless", "-u", "2", "-r", "2", "-t", "3s", *SMALL,
                     "--threshold", "seal_rate >= 0.999", "--threshold", "p95(total_ms) < 0.001")
    assert run.returncode == 3, run.output[-3000:]
    block = run.stdout[run.stdout.index("loadkit summary"):].rstrip().splitlines()
    assert len(block) < 25
    text = "\n".join(block)
    assert re.search(r"items +[\d,]+ +[\d.,]+ (k |M )?items/s +[\d.,]+ (MB|kB)/s", text), text
    assert "✓ seal_rate >= 0.999" in text
    assert re.search(r"✗ p95\(total_ms\) < 0\.001 +[\d.,]+ ms", text), text
    assert "thresholds: 1 passed, 1 failed (exit code 3)" in text
    numbers = re.sub(r"run \S+", "run", text)  # a run id's hex suffix may read "0e4"
    assert not re.search(r"\de[+-]?\d", numbers)
    assert "Response time percentiles" in run.stderr  # locust's tables, printed before it
    assert "Traceback" not in run.output


def test_summary_none_and_short(run_locust):
    """--summary none prints the thresholds table instead; short prints a few lines."""
    none = run_locust("--headless", "-u", "1", "-r", "1", "-t", "2s", *SMALL,
                      "--summary", "none", "--threshold", "batches > 0", "--run-id", "none")
    assert none.returncode == 0, none.output[-3000:]
    assert "loadkit summary" not in none.output
    assert "thresholds: 1 passed, 0 failed" in none.stdout
    short = run_locust("--headless", "-u", "1", "-r", "1", "-t", "2s", *SMALL,
                       "--summary", "short", "--run-id", "short")
    assert short.returncode == 0, short.output[-3000:]
    block = short.stdout[short.stdout.index("loadkit summary"):].strip().splitlines()
    assert 2 <= len(block) <= 4
    bad = run_locust("--headless", "-u", "1", "-t", "1s", "--summary", "long")
    assert bad.returncode == 2
    assert "summary" in bad.stderr
    assert "none, short or full" in bad.stderr
