"""Fixtures of the fault campaign: locust runs, an external reference server that can be killed."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.locust.conftest import clean_env, locust_argv, run_locust  # noqa: F401

_URL = re.compile(r"listening on (http://\S+)")
_SPEC = importlib.util.spec_from_file_location(
    "loadkit_bench_campaign", Path(__file__).resolve().parents[2] / "bench" / "campaign.py")
assert _SPEC is not None
assert _SPEC.loader is not None
campaign = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(campaign)
"""``bench/campaign.py``: the campaign's flags, figures and checks (one definition)."""


class ExternalServer:
    """``loadkit serve`` in its own process, killed and restarted on the same port.

    The first start binds port 0 and reads the port the server got from its listening line
    (no port picked free, released, then taken again); a restart must reuse that port, as
    the run's clients hold its URL.
    """

    def __init__(self, key: str, *flags: str) -> None:
        self.key = key
        self.flags = flags
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "serve", "--port", str(self.port), *self.flags],
            env=clean_env(TRIGGER_SECRET_KEY=self.key), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if m := _URL.search(line):
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"loadkit serve did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stats(self) -> dict:
        return httpx.get(self.url + "/api/loadkit/stats", timeout=10).json()


@pytest.fixture
def external_server():
    """Start ``loadkit serve`` processes with a given key; every one is killed at the end."""
    servers: list[ExternalServer] = []

    def start(key: str, *flags: str) -> ExternalServer:
        server = ExternalServer(key, *flags)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()


def files_under(*roots: Path) -> dict[Path, bytes]:
    """Every file under the given folders (or the files themselves), as bytes."""
    out: dict[Path, bytes] = {}
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            out[path] = path.read_bytes()
    return out
