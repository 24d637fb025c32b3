"""verify=True against slow engines, and the client defaults the run options take over."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loadkit import wire
from loadkit.client import DEFAULT_TIMEOUT, DEFAULT_VERIFY_TIMEOUT, BatchClient
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec
from loadkit.options import OPTIONS, parse_options

from .conftest import KEY, Script

BATCH = BatchSpec.parse(items="10").batch(0)


def _processing(runs: list[str], errors: list[dict[str, Any]] | None = None) -> tuple:
    return (200, {"id": "batch_script", "status": "PROCESSING", "runCount": 10, "runs": runs,
                  "processing": {"errors": errors or []}}, {})


def _verify(script: Script, verify_timeout: float):
    # scripted: a retrieve in an exact state on cue (PROCESSING with these runs, a lying
    # answer, a 404 of replica lag, then the batch); the reference server's slow engine is
    # verified for real in test_reference_server_with_a_slow_engine_is_not_reported_wrong
    with BatchClient("http://target.test", KEY, transport=httpx.MockTransport(script),
                     verify=True, verify_timeout=verify_timeout) as client:
        return client.send(BATCH)


def test_slow_engine_is_not_checked_in_time_rather_than_wrong():
    """Runs still being made when verify_timeout ends: verified None and a note, no violation."""
    script = Script(retrieve=[_processing([f"run_{i}" for i in range(3)])])
    result = _verify(script, verify_timeout=0.2)
    polls = sum(r.method == "GET" for r in script.requests)
    assert polls >= 2
    assert result.violations == []
    assert result.verified is None
    assert result.ok
    assert "not verified within verify_timeout=0.2 s" in result.verify_note
    assert "PROCESSING with 3 of 10 runs" in result.verify_note
    assert result.as_dict()["verify_note"] == result.verify_note
    assert result.to_record(run_id="r", worker_id="w", user_id=0).verified is None


def test_engine_that_finishes_while_polled_is_verified():
    """A batch whose runs appear over a few polls is verified once they are all there."""
    script = Script(retrieve=[_processing(["run_0"]), _processing(["run_0", "run_1"]), "batch"])
    result = _verify(script, verify_timeout=5.0)
    assert result.verified is True, result.violations
    assert result.verify_note is None


@pytest.mark.parametrize(("runs", "errors", "name"), [
    (["run_1", "run_1", "run_2"], [], "runs_duplicate"),
    (["run_1"], [{"index": 4, "errorCode": wire.PAYLOAD_TOO_LARGE}], "too_large_mismatch"),
], ids=["duplicate-runs", "unexpected-too-large"])
def test_timed_out_verify_still_reports_a_proven_mismatch(runs, errors, name):
    """What was seen before the timeout can prove a mismatch: that is a violation."""
    result = _verify(Script(retrieve=[_processing(runs, errors)]), verify_timeout=0)
    assert [v.name for v in result.violations] == [name]
    assert result.verified is False
    assert result.verify_note is None


def test_more_runs_than_run_count_is_a_mismatch():
    """More runs than runCount is wrong however far the engine has got."""
    result = _verify(Script(retrieve=[_processing([f"run_{i}" for i in range(11)])]),
                     verify_timeout=0)
    assert [v.name for v in result.violations] == ["runs_count_mismatch"]
    assert result.verified is False


def test_reference_server_with_a_slow_engine_is_not_reported_wrong(make_server, make_client):
    """A correct server making 20 runs/s is not checked in time by a 0.3 s verify, not wrong."""
    srv = make_server(run_rate=20)
    result = make_client(srv.url, verify=True, verify_timeout=0.3).send(
        BatchSpec.parse(items="200").batch(0))
    assert result.sealed
    assert result.violations == []
    assert result.verified is None
    assert "of 200 runs" in result.verify_note


def test_one_timeout_default_for_client_and_run_options():
    """BatchClient and the run options share DEFAULT_TIMEOUT and DEFAULT_VERIFY_TIMEOUT."""
    options = parse_options()
    assert options.client.timeout == DEFAULT_TIMEOUT == 330
    assert options.client.verify_timeout == DEFAULT_VERIFY_TIMEOUT
    rows = {o.name: o for o in OPTIONS}
    assert float(rows["timeout"].default) == DEFAULT_TIMEOUT
    assert (rows["verify_timeout"].group, float(rows["verify_timeout"].default)) == (
        "client", DEFAULT_VERIFY_TIMEOUT)
    with options.client.make_client("http://target.test", KEY, 65536) as built, \
            BatchClient("http://target.test", KEY) as plain:
        for client in (built, plain):
            assert client.timeout.read == DEFAULT_TIMEOUT
            assert client.timeout.connect == 10
            assert client.verify_timeout == DEFAULT_VERIFY_TIMEOUT
    tuned = parse_options(verify_timeout="2.5", verify="true")
    assert tuned.settings["verify_timeout"] == 2.5
    with tuned.client.make_client("http://target.test", KEY, 65536) as client:
        assert (client.verify, client.verify_timeout) == (True, 2.5)
    with pytest.raises(ConfigError, match="verify_timeout"):
        parse_options(verify_timeout="-1")
    with pytest.raises(ConfigError, match="verify_timeout"):
        BatchClient("http://target.test", KEY, verify_timeout=float("nan"))


def test_verify_retries_a_retryable_404_until_the_batch_appears():
    """A 404 with x-should-retry: true (replica lag) is asked again; the batch then verifies."""
    lag = (404, {"error": "Not found"}, {wire.Header.SHOULD_RETRY: "true"})
    script = Script(retrieve=[lag, lag, "batch"])
    result = _verify(script, verify_timeout=5.0)
    assert sum(r.method == "GET" for r in script.requests) == 3
    assert result.verified is True, result.violations


def test_verify_gives_up_on_a_retryable_404_at_its_timeout():
    """A 404 lasting past verify_timeout fails the retrieve; one not retryable fails at once."""
    lag = (404, {"error": "Not found"}, {wire.Header.SHOULD_RETRY: "true"})
    result = _verify(Script(retrieve=[lag]), verify_timeout=0.3)
    assert [v.name for v in result.violations] == ["retrieve_failed"]
    final = Script(retrieve=[(404, {"error": "Not found"}, {wire.Header.SHOULD_RETRY: "false"})])
    result = _verify(final, verify_timeout=5.0)
    assert sum(r.method == "GET" for r in final.requests) == 1
    assert result.verified is False
