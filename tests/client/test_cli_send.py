"""`loadkit send` as a subprocess: JSON out, exit codes, no key in the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import KEY, ThreadedASGI, WrongServer


def _send(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    return subprocess.run([sys.executable, "-m", "loadkit", "send", *argv], capture_output=True,
                          text=True, timeout=60, env={**base, **(env or {})}, check=False)


def test_send_without_target_starts_a_reference_server():
    """With no --url or TRIGGER_API_URL it starts a server, seals the batch and prints JSON."""
    proc = _send("--items", "40", "--faults", "gap=0.1,malformed=1", "--retry-resend",
                 "missing", "--retry-base-delay", "10ms", "--verify", "true", "--seq", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"] == "sealed"
    assert out["violations"] == []
    assert out["verified"] is True
    assert out["seq"] == 2
    assert out["retry"]["resend"] == "missing"
    assert out["attempts"][0]["reason"] == "expected_error"
    assert "reference server" in proc.stderr


def test_send_to_url_with_env_key_never_prints_it(server):
    """--url with the key from TRIGGER_SECRET_KEY works and the key is not in the output."""
    proc = _send("--url", server.url, "--items", "30", env={"TRIGGER_SECRET_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sealed"] is True
    assert KEY not in proc.stdout + proc.stderr


def test_send_failure_exits_1_and_bad_flag_exits_2(server):
    """A rejected key gives exit 1 with an auth error; a bad spec value gives exit 2."""
    proc = _send("--url", server.url, "--items", "5",
                 env={"TRIGGER_SECRET_KEY": "tr_dev_wrong_key"})
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["error_kind"] == "auth"
    assert "tr_dev_wrong_key" not in proc.stdout
    bad = _send("--items", "lots")
    assert bad.returncode == 2
    assert "items" in bad.stderr
    bad = _send("--retry-resend", "some")
    assert bad.returncode == 2
    assert "resend" in bad.stderr


class _Capture(WrongServer):
    """An honest batch API that keeps every stream body it was sent."""

    def __init__(self) -> None:
        super().__init__("honest")
        self.bodies: list[bytes] = []

    def _stream(self, batch_id, batch, body, attempt):
        self.bodies.append(body)
        return super()._stream(batch_id, batch, body, attempt)


def test_send_to_a_real_target_tags_every_item_with_its_run():
    """Every item sent to a target carries loadkit and loadkit:<run id>, the id in the JSON;
    --tag-runs false sends none."""
    capture = _Capture()
    with ThreadedASGI(capture) as srv:
        proc = _send("--url", srv.url, "--items", "25", "--run-id", "send-check",
                     env={"TRIGGER_SECRET_KEY": KEY})
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["run_id"] == "send-check"
        assert out["tags"] == ["loadkit", "loadkit:send-check"]
        items = [json.loads(line) for line in capture.bodies[0].splitlines() if line]
        assert len(items) == 25
        assert all(i["options"]["tags"][:2] == ["loadkit", "loadkit:send-check"] for i in items)
        proc = _send("--url", srv.url, "--items", "5", "--tag-runs", "false",
                     env={"TRIGGER_SECRET_KEY": KEY})
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["tags"] == []
        items = [json.loads(line) for line in capture.bodies[1].splitlines() if line]
        assert not any("tags" in i.get("options", {}) for i in items)
