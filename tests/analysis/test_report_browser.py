"""The report opened in a real browser (headless Chromium): loads clean, images whole, a
screenshot kept as a test artefact."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadkit.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTEFACTS = Path(os.environ.get("LOADKIT_ARTEFACTS", "/tmp/loadkit-artefacts"))
"""Where the screenshots go (not committed)."""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install "
    "chromium; .ci/run installs it when the machine allows)")

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-probe',
    `images=${document.images.length} broken=${broken} errors=${window.__errors.length}`);
});
</script>"""
"""Added to a copy of the page only: counts images, broken images and script errors."""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def test_report_in_headless_chromium(run_a_dir, tmp_path):
    """The report loads with no console error and no broken image; a screenshot is taken."""
    path = write_report(run_a_dir, tmp_path / "out")
    probe = path.with_name("probe.html")
    probe.write_text(path.read_text(encoding="utf-8").replace("</head>", _PROBE + "</head>"),
                     encoding="utf-8")
    dom = _chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile-1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-probe="images=(\d+) broken=(\d+) errors=(\d+)"', dom.stdout)
    assert found, dom.stdout[:2000]
    images, broken, errors = map(int, found.groups())
    assert images == 6
    assert broken == 0
    assert errors == 0
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    assert 'id="verdict"' in dom.stdout
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"report-{run_a_dir.parent.name}.png"
    taken = _chromium(f"--screenshot={shot}", "--window-size=1300,2000", path.as_uri(),
                      profile=tmp_path / "profile-2")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
