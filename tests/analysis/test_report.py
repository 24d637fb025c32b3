"""The HTML report: produced, self-contained, with plots and thresholds, and never a key."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest

from loadkit.report import REDACTED, redact, write_report


def test_report_written_self_contained(run_a_dir, fake_key, tmp_path):
    """report.html embeds every plot, shows the tables and thresholds, and loads nothing."""
    path = write_report(run_a_dir, tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    for section in ("Charts", "Thresholds", "Latency", "Seals", "Dedupe", "Retries",
                    "Backpressure", "Rate limiting", "Per worker", "Cross-check", "Run"):
        assert f"<h2>{section}" in page, section
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 6
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == sorted(["throughput.png", "latency_over_time.png", "latency_cdf.png",
                           "stall_over_time.png", "seal_outcomes.png", "dedupe.png"])
    assert all(p.stat().st_size > 5_000 for p in path.parent.glob("*.png"))
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "p95(total_ms) &lt; 2000" in page
    assert "seal_rate &gt;= 0.5" in page
    assert "✓ pass" in page


def test_report_contains_no_key(run_a_dir, fake_key, tmp_path, monkeypatch):
    """The planted key (in options, a header and the environment) appears in no output file."""
    monkeypatch.setenv("TRIGGER_SECRET_KEY", fake_key)
    path = write_report(run_a_dir, tmp_path / "out")
    for file in path.parent.iterdir():
        assert fake_key.encode() not in file.read_bytes(), file.name
    page = path.read_text(encoding="utf-8")
    assert REDACTED in page
    assert "LEAKCANARY" not in page


def test_report_redacts_a_key_not_in_the_environment(run_a_dir, fake_key, tmp_path,
                                                     monkeypatch):
    """Without the key in the environment, redaction alone keeps it out of every file."""
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    path = write_report(run_a_dir, tmp_path / "out")
    for file in path.parent.iterdir():
        assert fake_key.encode() not in file.read_bytes(), file.name
    assert REDACTED in path.read_text(encoding="utf-8")


def test_redact():
    """Secret-named values, Trigger keys, bearer tokens and given strings are replaced."""
    got = redact({"secret_key": "x", "api-key": "y", "users": 3, "key": "",
                  "nested": [{"note": "Bearer abc.def tr_prod_123abc and s3cr3tvalue"}]},
                 ("s3cr3tvalue",))
    assert got == {"secret_key": REDACTED, "api-key": REDACTED, "users": 3, "key": "",
                   "nested": [{"note": f"{REDACTED} {REDACTED} and {REDACTED}"}]}


def test_report_default_folder_and_cli(run_a_dir):
    """`loadkit report RUN_DIR` writes RUN_DIR/report/report.html and prints its path."""
    result = subprocess.run([sys.executable, "-m", "loadkit", "report", str(run_a_dir)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(run_a_dir / "report" / "report.html")
    assert (run_a_dir / "report" / "throughput.png").exists()


def test_report_cli_bad_input(tmp_path):
    """Not a run, or a bad resolution: one clear line, no traceback."""
    result = subprocess.run([sys.executable, "-m", "loadkit", "report", str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "not a loadkit run directory" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "loadkit", "report", str(tmp_path),
                             "--resolution", "soon"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "--resolution" in result.stderr


def test_report_of_an_empty_run(make_run, meta_for, tmp_path):
    """A run without batches still gets a report (with the loader's note in it)."""
    run_dir = make_run("empty", [], meta_for("empty"))
    with pytest.warns(UserWarning, match="no batch records"):
        path = write_report(run_dir, tmp_path / "out")
    assert "no batch records" in path.read_text(encoding="utf-8")


def test_report_files_are_written_by_the_one_atomic_writer(run_a_dir, tmp_path, monkeypatch):
    """Every report file goes through records.atomic_write, which also fsyncs the folder."""
    from loadkit import records  # noqa: PLC0415

    synced = []
    monkeypatch.setattr(records, "_fsync_dir", synced.append)
    path = write_report(run_a_dir, tmp_path / "out")
    assert synced == [path.parent] * 7  # six PNGs and report.html


def test_verdict_and_headline_come_first(run_a_dir, tmp_path):
    """The verdict, then the headline figures, before any table or chart; 429s and
    violations make it FAILED; no scientific notation anywhere in the text."""
    page = write_report(run_a_dir, tmp_path / "out").read_text(encoding="utf-8")
    verdict, headline = page.index('id="verdict"'), page.index('id="headline"')
    assert verdict < headline < page.index("<table")
    assert headline < page.index("<img")
    assert re.search(r'class="verdict fail"><div class="word">FAILED', page)
    assert "1 contract violation" in page
    assert "200 items/s" in page[headline:page.index("</section>", headline)]
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", page))
    text = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
    assert not re.search(r"\d\.?\d*e[+-]\d", text)


def test_options_and_run_json_are_key_value_tables(run_a_dir, tmp_path):
    """Options and run.json are redacted key/value tables in collapsed details, not JSON."""
    page = write_report(run_a_dir, tmp_path / "out").read_text(encoding="utf-8")
    assert "<pre>" not in page
    assert page.count("<details>") == 3
    assert "<th>server_stats.batches_sealed</th><td class=l>4</td>" in page
    assert "<th>threshold</th><td class=l>p95(total_ms) &lt; 2000, seal_rate &gt;= 0.5</td>" \
        in page


def test_nothing_empty_for_a_clean_run(make_run, meta_for, tmp_path):
    """A run where nothing went wrong shows one line per quiet section, no empty chart."""
    from tests.analysis.conftest import rec  # noqa: PLC0415

    records = [rec(i, i * 0.1, i * 0.1 + 0.05, create_ms=5.0, stream_ms=40.0, total_ms=50.0)
               for i in range(20)]
    path = write_report(make_run("clean", records, meta_for("clean")), tmp_path / "out")
    page = path.read_text(encoding="utf-8")
    assert re.search(r'class="verdict pass"><div class="word">PASSED', page)
    for line in ("no stall", "every batch sealed on the first try", "no faults injected",
                 "no retries", "no rate limiting", "no late or missing seals"):
        assert line in page, line
    assert sorted(p.stem for p in path.parent.glob("*.png")) == [
        "latency_cdf", "latency_over_time", "throughput"]
    assert "Per worker" not in page
