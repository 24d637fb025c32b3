"""``--client sdk``: the client streams as the official SDK does (a real reference server on
loopback): one NDJSON line per write, the whole stream re-sent on a retry, the SDK's backoff
and its reading of ``x-ratelimit-reset``; the record names the client mode."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loadkit.client import BatchClient, ClientConfig, RetryPolicy
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec
from loadkit.options import parse_options

from .conftest import FAST, KEY


def _client(url: str, delays: list[float] | None = None, **kw: object) -> BatchClient:
    sleep = delays.append if delays is not None else (lambda _s: None)
    return BatchClient(url, KEY, mode="sdk", seed=1, timeout=20.0, sleep=sleep, **kw)


def test_sdk_mode_seals_one_line_per_chunk(server):
    batch = BatchSpec.parse(items="300", payload_bytes="200", seed="4").batch(0)
    lines = list(batch.lines())
    with _client(server.url, keep_chunk_timings=True) as client:
        result = client.send(batch)
    assert result.sealed, result.as_dict()
    assert result.ok
    assert result.violations == []
    (attempt,) = result.attempts
    assert attempt.timings is not None
    assert len(attempt.timings) == attempt.chunks == attempt.lines == 300
    assert attempt.timings.size.tolist() == [len(line) for line in lines]
    assert result.items_accepted == 300


def test_loadkit_mode_still_coalesces(server):
    batch = BatchSpec.parse(items="300", payload_bytes="200", seed="4").batch(0)
    with BatchClient(server.url, KEY, retry=FAST, keep_chunk_timings=True) as client:
        result = client.send(batch)
    assert result.sealed
    assert result.client_mode == "loadkit"
    assert result.attempts[0].chunks < 10


def test_sdk_retry_resends_the_full_body_with_sdk_backoff(server):
    batch = BatchSpec.parse(items="400", payload_bytes="100", faults="gap=0.05",
                            seed="2").batch(0)
    assert batch.expected.missing  # the first stream leaves gaps: sealed false, then a retry
    delays: list[float] = []
    with _client(server.url, delays, keep_chunk_timings=True) as client:
        result = client.send(batch)
    assert result.sealed, result.as_dict()
    assert result.violations == []
    first, retry = result.attempts[0], result.attempts[1]
    assert first.lines == batch.expected.lines < 400
    assert retry.sent == "full"
    assert retry.lines == retry.chunks == 400  # every line again, one per chunk
    assert retry.stream_answer is not None
    answer = retry.stream_answer
    assert answer.items_accepted == len(batch.expected.missing)
    assert answer.items_accepted + answer.items_deduplicated == 400
    assert len(delays) == 1
    assert 1.0 <= delays[0] < 2.0


def test_sdk_mode_record_names_the_client_mode(server):
    batch = BatchSpec.parse(items="20", seed="1").batch(0)
    with _client(server.url) as client:
        record = client.send(batch).to_record(run_id="r", worker_id="local", user_id=0)
    assert record.client_mode == "sdk"
    assert record.as_dict()["client_mode"] == "sdk"


def test_sdk_mode_takes_the_sdk_retry_policy():
    config = ClientConfig(mode="sdk")
    assert config.retry.rate_limit_reset == "ms"
    assert config.retry.resend == "full"
    assert ClientConfig(mode="sdk", retry=RetryPolicy(rate_limit_max_wait=5)).mode == "sdk"
    with pytest.raises(ConfigError, match="retry_resend"):
        ClientConfig(mode="sdk", retry=RetryPolicy(resend="missing"))
    with pytest.raises(ConfigError, match="retry_attempts"):
        parse_options(client="sdk", retry_attempts="2")
    with pytest.raises(ConfigError, match=r"^client: 'nope'"):
        parse_options(client="nope")
    opts = parse_options(client="SDK")
    assert opts.client.mode == "sdk"
    assert opts.settings["client"] == "sdk"
    assert opts.settings["retry_rate_limit_reset"] == "ms"
    assert parse_options().client.mode == "loadkit"


def test_sdk_reads_ratelimit_reset_as_epoch_ms():
    now = time.time()
    sdk = ClientConfig(mode="sdk").retry
    ms = sdk.rate_limit_wait({"x-ratelimit-reset": str(int((now + 3) * 1000))}, now)
    assert ms is not None
    assert ms.unit == "ms"
    assert 2.0 < ms.seconds <= 3.0
    # epoch seconds read as ms lie in 1970: past, so the SDK reads on (retry-after, backoff)
    secs = {"x-ratelimit-reset": str(int(now + 3))}
    assert sdk.rate_limit_wait(secs, now) is None
    after = sdk.rate_limit_wait({**secs, "retry-after": "2"}, now)
    assert after is not None
    assert after.source == "retry-after"
    assert after.seconds == 2.0
    auto = RetryPolicy().rate_limit_wait(secs, now)
    assert auto is not None
    assert auto.unit == "s"


def test_bad_client_value_exits_2():
    proc = subprocess.run([sys.executable, "-m", "loadkit", "send", "--client", "nope"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "client: 'nope' is not valid" in lines[0]
    assert proc.stdout == ""
