"""Tests of `loadkit serve` as a subprocess, ReferenceServer process mode and ServerConfig."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from loadkit import wire
from loadkit.errors import ConfigError
from loadkit.server import RateLimit, ReferenceServer, ServerConfig

LINE = re.compile(r"^loadkit reference server listening on (http://127\.0\.0\.1:\d+)$")


def _serve(*flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadkit", "serve", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_url_line_and_stops_cleanly(sig):
    """`loadkit serve --port 0` prints one URL line, serves, and exits 0 on SIGTERM/SIGINT."""
    proc = _serve("--port", "0", "--secret-key", "tr_dev_cli_secret_1")
    try:
        line = proc.stdout.readline().strip()
        url = LINE.match(line).group(1)
        r = httpx.post(
            url + wire.CREATE_PATH,
            json={"runCount": 1},
            headers={"authorization": "Bearer tr_dev_cli_secret_1"},
        )
        assert r.status_code == 202
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert out == ""
    assert "Traceback" not in err
    assert "tr_dev_cli_secret_1" not in err


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--error-rate", "2"], "error_rate"),
        (["--drop-rate", "x"], "drop_rate"),
        (["--rate-limit", "1200/10s"], "rate_limit"),
        (["--port", "abc"], "port"),
        (["--max-items", "0"], "max_items"),
        (["--request-timeout", "-1"], "request_timeout"),
        (["--secret-key", "has space"], "secret_keys"),
    ],
)
def test_serve_bad_flag_exits_2_with_one_clear_line(flags, field):
    """A bad flag value exits 2 with one line naming the field, no traceback and no secret."""
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "serve", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("loadkit serve: error: " + field)
    assert "Traceback" not in err
    assert "has space" not in err


def test_default_key_comes_from_environment():
    """Without --secret-key the server accepts TRIGGER_SECRET_KEY (comma-separated keys allowed)."""
    proc = _serve(env={"TRIGGER_SECRET_KEY": "tr_dev_env_a,tr_dev_env_b"})
    try:
        url = LINE.match(proc.stdout.readline().strip()).group(1)
        for key, status in (("tr_dev_env_b", 202), (wire.DEFAULT_LOCAL_SECRET_KEY, 401)):
            r = httpx.post(
                url + wire.CREATE_PATH,
                json={"runCount": 1},
                headers={"authorization": f"Bearer {key}"},
            )
            assert r.status_code == status
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_reference_server_process_mode_round_trip():
    """ReferenceServer() runs a subprocess, passes knobs as flags, reports stats and stops it."""
    with ReferenceServer(max_items=7, secret_keys=("tr_dev_proc",)) as server:
        assert LINE.match(f"loadkit reference server listening on {server.url}")
        pid = server.pid
        headers = {"authorization": "Bearer tr_dev_proc"}
        r = httpx.post(server.url + wire.CREATE_PATH, json={"runCount": 8}, headers=headers)
        assert r.json()["error"] == wire.msg.run_count_over(8, 7)
        assert server.stats()["create_requests"] == 1
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_config_parses_strings_like_flags():
    """ServerConfig.parse takes the strings a command line gives and checks them."""
    c = ServerConfig.parse(
        max_items="5000",
        error_rate="0.25",
        rate_limit="1200:100/10s",
        seed="4",
        secret_keys=["a", "b"],
        access_log="false",
    )
    assert c.max_items == 5000
    assert c.error_rate == 0.25
    assert c.rate_limit == RateLimit(1200, 100, 10.0)
    assert c.seed == 4
    assert c.secret_keys == ("a", "b")
    assert ServerConfig.parse(rate_limit="off").rate_limit is None
    assert RateLimit.parse("10:5/500ms").interval_s == 0.5
    assert ServerConfig.parse(**{"rate_limit": "1200:100/10s", "max_items": 9}).to_argv() == [
        "--max-items",
        "9",
        "--rate-limit",
        "1200:100/10s",
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"rate_limit_reset_unit": "us"}, "rate_limit_reset_unit"),
        ({"port": 70000}, "port"),
        ({"nonsense": 1}, "nonsense"),
        ({"secret_keys": []}, "secret_keys"),
        ({"enqueue_delay": "nan"}, "enqueue_delay"),
    ],
)
def test_server_config_rejects_bad_values(kwargs, field):
    """Bad knob values raise ConfigError naming the field."""
    with pytest.raises(ConfigError) as info:
        ServerConfig.parse(**kwargs)
    assert info.value.field == field


def test_redacted_config_hides_keys():
    """The loggable form of a config never holds a secret key."""
    c = ServerConfig(secret_keys=("tr_dev_hidden",))
    assert "tr_dev_hidden" not in repr(c.redacted())


def test_config_repr_hides_keys():
    """repr(ServerConfig) never shows the secret keys."""
    assert "tr_dev_hidden" not in repr(ServerConfig(secret_keys=("tr_dev_hidden",)))
