"""Shared fixtures. Keep this minimal: fixtures of one area live in that area's conftest."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadkit.server import ReferenceServer


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background of a non-interactive shell (``cmd &``) inherits
    SIGINT ignored, and so would every process it starts: locust and ``loadkit.run`` would
    then never see the Ctrl-C the interrupt tests send (they hung until their timeouts).
    Handling SIGINT here gives each child the default disposition again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


PRIVILEGED = "privilege-dependent:"
"""How the skip reason of a test that needs privileges this machine lacks begins (mounting a
file system needs root with CAP_SYS_ADMIN); the summary names every such test."""


@pytest.fixture(scope="session")
def reference_server():
    """A started reference server (own process, default knobs) shared by the whole session."""
    with ReferenceServer(mode="process") as server:
        yield server


@pytest.fixture
def read_only_dir() -> Iterator[Callable[[Path], str]]:
    """Make a folder this process cannot write into; returns the error text the OS will give.

    Folder modes stop a user but not root, so for root a read-only tmpfs is mounted on the
    folder instead (unmounted at teardown); where neither works the test is skipped, and the
    summary says so.
    """
    locked: list[Path] = []
    mounted: list[Path] = []

    def make(path: Path) -> str:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            path.chmod(0o555)
            locked.append(path)
            return "Permission denied"
        try:
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                                   str(path)], capture_output=True, text=True, timeout=10,
                                  check=False)
            problem = (proc.stderr.strip() or "failed").splitlines()[0] if proc.returncode else ""
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
        if problem:
            pytest.skip(f"{PRIVILEGED} root writes into any folder, and a read-only tmpfs "
                        f"cannot be mounted here: {problem}")
        mounted.append(path)
        return "Read-only file system"

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    for path in locked:
        path.chmod(0o755)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A section of its own naming the privilege-dependent tests that were skipped, so that a
    run without root (CI's, say) shows what it did not check."""
    skipped = []
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        if PRIVILEGED in reason:
            skipped.append((report.nodeid, reason.split(PRIVILEGED, 1)[1].strip()))
    if not skipped:
        return
    terminalreporter.write_sep("=", f"{len(skipped)} privilege-dependent tests did NOT run",
                               yellow=True, bold=True)
    for nodeid, reason in skipped:
        terminalreporter.write_line(f"NOT RUN {nodeid}: {reason}")
    terminalreporter.write_line("what they check (full or read-only disks) was not tested "
                                "here: run the suite as root (with CAP_SYS_ADMIN) to check it")
