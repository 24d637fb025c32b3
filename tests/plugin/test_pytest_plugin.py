"""The pytest plugin end to end: inner pytest sessions as a user's CI runs them.

Each test writes a small test suite with ``pytester`` and runs it with
``runpytest_subprocess``: a fresh interpreter in which the plugin comes from loadkit's
installed ``pytest11`` entry point, not from this session. Loads stay small (1 user, 2 s,
10 items of 32 bytes): the plugin is under test here, not the load.
"""

from __future__ import annotations

import re
import socket
import textwrap
from pathlib import Path

import pytest

from loadkit.server import ReferenceServer
from tests.plugin.conftest import PLANTED_KEY

pytest_plugins = ["pytester"]  # a test module may ask for it; a non-root conftest may not

INNER_TIMEOUT = 240.0
"""Seconds an inner session may take (its loads take a few seconds each)."""
STRICT = ("--strict-markers", "-W", "error", "-p", "no:cacheprovider")
"""A strict user configuration: the plugin's markers registered, no warning from it."""

SMALL = 'users=1, run_time="2s", items="10", payload_bytes="32"'
"""loadkit_run's arguments in the inner tests."""
REPO = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The example test of the README's "In your own test suite" (its first Python block)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## In your own test suite\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def _section(result: pytest.RunResult, title: str) -> list[str]:
    """The lines of one ``___ title ___`` section of the inner session's report."""
    lines, inside = [], False
    for line in result.outlines:
        if re.fullmatch(r"[_=-]{3,} .* [_=-]{3,}", line):
            if inside:
                break
            inside = title in line
            continue
        if inside:
            lines.append(line)
    return lines


@pytest.fixture(scope="module")
def planted_server():
    """A reference server that accepts only the planted key: a user's own target."""
    with ReferenceServer(secret_keys=(PLANTED_KEY,), mode="process") as server:
        yield server


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on, held bound by this test (never listened on) so
    that a connect is refused and no other process takes it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.slow
def test_passing_and_failing_load_tests(pytester):
    """A passing and a failing load test against loadkit_server: the marker's knobs reach the
    server (its config, and every create answered no faster than create_delay), the run lands
    under tmp_path, the server's counters agree with the records, and the failing test's
    message is the thresholds table, followed by the results path, which is kept. The
    README's example passes too (with shorter runs)."""
    example = readme_example()
    assert 'run_time="5s"' in example
    assert 'run_time="3s"' in example
    pytester.makepyfile(test_readme=re.sub(r'run_time="\d+s"', 'run_time="2s"', example))
    pytester.makepyfile(test_load=f"""
        import pytest

        pytestmark = pytest.mark.loadkit_server(create_delay=0.05)

        def test_fast_enough(loadkit_server, loadkit_run, tmp_path):
            assert loadkit_server.config.create_delay == 0.05
            loadkit_server.reset()
            run = loadkit_run({SMALL})
            check = run.assert_thresholds("seal_rate >= 0.999", "min(create_ms) >= 50")
            assert check.passed
            assert run.path.parent == tmp_path
            stats = loadkit_server.stats()
            assert stats["batches_created"] == len(run.batches) > 0
            assert stats["batches_sealed"] == run.summary()["sealed"]

        def test_too_slow(loadkit_run):
            run = loadkit_run({SMALL})
            run.assert_thresholds("p95(total_ms) < 0.001", "seal_rate >= 0.999")
    """)
    result = pytester.runpytest_subprocess(*STRICT, "-ra", timeout=INNER_TIMEOUT)
    out = _output(result)
    result.assert_outcomes(passed=3, failed=1)

    failure = _section(result, "test_too_slow")
    # the message is the thresholds table, line for line
    table = textwrap.dedent("\n".join(line[1:] for line in failure
                                      if line.startswith("E "))).splitlines()
    assert table[0].startswith("AssertionError: threshold")
    assert re.fullmatch(r"p95\(total_ms\) < 0\.001 +\d[\d.]* +FAIL", table[2]), table
    assert re.fullmatch(r"seal_rate >= 0\.999 +1 +pass", table[3]), table
    assert table[4] == "thresholds: 1 passed, 1 failed (exit code 3)"
    # the kept results path: in the failure's report, and in the terminal summary
    (kept,) = re.findall(r"test_load\.py::test_too_slow: (\S+)", out)
    assert _section(result, "loadkit results (kept)") == [kept]
    run_dir = Path(kept)
    assert run_dir.is_absolute()
    assert (run_dir / "run.json").is_file()
    assert (run_dir / "records.parquet").is_file()
    assert "test_fast_enough:" not in out  # a passing test's path is not printed


def test_servers_are_shared_by_knobs_and_load_tests_deselected(pytester):
    """One server per distinct set of knobs (the same knobs in another spelling share it);
    class and function markers merge, the closest winning; stats() is /api/loadkit/stats and
    reset() zeroes it; -m "not loadkit" deselects every test that uses loadkit_run and every
    test marked loadkit, and no load runs."""
    pytester.makepyfile(test_servers="""
        import httpx
        import pytest

        seen = {}

        @pytest.mark.loadkit_server(create_delay=0.01)
        def test_a(loadkit_server):
            seen["a"] = loadkit_server.url
            key = {"Authorization": "Bearer " + loadkit_server.secret_key}
            answer = httpx.post(loadkit_server.url + "/api/v3/batches", json={"runCount": 2},
                                headers=key)
            assert answer.is_success, answer.text
            stats = loadkit_server.stats()
            served = httpx.get(loadkit_server.url + "/api/loadkit/stats").json()
            assert stats.keys() == served.keys()
            assert stats["batches_created"] == 1
            assert loadkit_server.reset()["batches_created"] == 0
            assert loadkit_server.stats()["batches_created"] == 0

        @pytest.mark.loadkit_server(create_delay="0.01")
        def test_b(loadkit_server):
            seen["b"] = loadkit_server.url

        @pytest.mark.loadkit_server(create_delay=0.02)
        def test_c(loadkit_server):
            seen["c"] = loadkit_server.url

        def test_d(loadkit_server):
            seen["d"] = loadkit_server.url
            assert loadkit_server.config.create_delay == 0

        @pytest.mark.loadkit_server(ingest_rate=20000, create_delay=0.5)
        class TestMerged:
            @pytest.mark.loadkit_server(create_delay=0.02)
            def test_merged(self, loadkit_server):
                seen["merged"] = loadkit_server.url
                assert loadkit_server.config.ingest_rate == 20000
                assert loadkit_server.config.create_delay == 0.02

        def test_urls():
            assert seen["a"] == seen["b"]
            assert len({seen["a"], seen["c"], seen["d"], seen["merged"]}) == 4

        def test_load(loadkit_run):
            raise AssertionError("deselected: it uses loadkit_run")

        @pytest.mark.loadkit
        def test_marked():
            raise AssertionError("deselected: marked loadkit")
    """)
    result = pytester.runpytest_subprocess(*STRICT, "-m", "not loadkit", timeout=INNER_TIMEOUT)
    result.assert_outcomes(passed=6, deselected=2)
    assert "loadkit results" not in _output(result)


@pytest.mark.parametrize(("knobs", "named"), [
    ("create_dleay=0.05, ingest_rate=20000", "unknown knob 'create_dleay'"),
    ("drop_rate=2", "drop_rate: 2.0 is not valid; expected a fraction from 0 to 1"),
])
def test_bad_marker_knob_is_a_usage_error(pytester, knobs, named):
    """A knob loadkit serve does not have (or a value it refuses): a usage error at
    collection naming it, the test and the valid knobs; nothing runs, no server starts."""
    pytester.makepyfile(test_knobs=f"""
        import pytest

        def test_plain():
            pass

        @pytest.mark.loadkit_server({knobs})
        def test_load(loadkit_server):
            pass
    """)
    result = pytester.runpytest_subprocess(*STRICT, timeout=INNER_TIMEOUT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.errlines if line.startswith("ERROR:")]
    assert named in line
    assert "test_knobs.py::test_load" in line
    if "unknown" in named:
        valid = line.split("valid knobs (loadkit serve's settings): ")[1].split(", ")
        assert {"create_delay", "ingest_rate", "enqueue_delay", "drop_rate",
                "rate_limit"} <= set(valid)
    assert "passed" not in _output(result)


@pytest.mark.parametrize("via", ["--loadkit-host", "TRIGGER_API_URL"])
def test_unreachable_target_is_an_error_of_one_line(pytester, monkeypatch, via, closed_port):
    """An unreachable target: each load test errors at setup (not fails) with one line naming
    the target; the key never appears; a test without loadkit_run still passes."""
    host = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("TRIGGER_SECRET_KEY", PLANTED_KEY)
    args: tuple[str, ...] = ()
    if via == "TRIGGER_API_URL":
        monkeypatch.setenv("TRIGGER_API_URL", host)
    else:
        args = ("--loadkit-host", host)
    pytester.makepyfile(test_target=f"""
        def test_load(loadkit_run):
            loadkit_run({SMALL})

        def test_other_load(loadkit_run):
            loadkit_run({SMALL})

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess(*STRICT, "-ra", *args, timeout=INNER_TIMEOUT)
    result.assert_outcomes(passed=1, errors=2)
    lines = [line for line in _section(result, "ERROR at setup of test_load") if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0] == f"loadkit: {via} {host} is unreachable: Connection refused"
    assert f"ERROR test_target.py::test_other_load - Failed: loadkit: {via}" in _output(result)
    assert PLANTED_KEY not in _output(result)


def test_target_without_a_key_is_an_error(pytester, planted_server):
    """A reachable --loadkit-host without TRIGGER_SECRET_KEY errors at setup, saying so."""
    pytester.makepyfile(test_key=f"""
        def test_load(loadkit_run):
            loadkit_run({SMALL})
    """)
    result = pytester.runpytest_subprocess(*STRICT, "--loadkit-host", planted_server.url,
                                           timeout=INNER_TIMEOUT)
    result.assert_outcomes(errors=1)
    (line,) = [line for line in _section(result, "ERROR at setup of test_load") if line.strip()]
    assert line.startswith(f"loadkit: --loadkit-host {planted_server.url} is given but "
                           "TRIGGER_SECRET_KEY is not set")


@pytest.mark.slow
def test_external_target_with_results_dir(pytester, monkeypatch, planted_server, tmp_path):
    """--loadkit-host with the key from TRIGGER_SECRET_KEY: the run loads that target (no
    local server), its run directory goes under --loadkit-results, and the key is in no
    output."""
    monkeypatch.setenv("TRIGGER_SECRET_KEY", PLANTED_KEY)
    results = tmp_path / "ci-results"
    pytester.makepyfile(test_external=f"""
        def test_load(loadkit_run, request):
            run = loadkit_run({SMALL})
            run.assert_thresholds("batches > 0", "seal_rate >= 0.999")
            assert run.meta["target"] == {planted_server.url!r}
            assert str(run.path.parent) == {str(results)!r}
            assert "loadkit_server" not in request.fixturenames
    """)
    planted_server.reset_stats()
    result = pytester.runpytest_subprocess(*STRICT, "--loadkit-host", planted_server.url,
                                           "--loadkit-results", str(results),
                                           timeout=INNER_TIMEOUT)
    result.assert_outcomes(passed=1)
    assert planted_server.stats()["batches_sealed"] > 0
    (run_dir,) = (p for p in results.iterdir() if p.is_dir())
    assert (run_dir / "records.parquet").is_file()
    assert PLANTED_KEY not in _output(result)
