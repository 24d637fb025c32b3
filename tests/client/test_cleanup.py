"""Real targets: every item tagged with the run, and ``loadkit cleanup`` canceling its runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from loadkit import wire
from loadkit.options import parse_options
from loadkit.records import RECORDS_JSONL, write_run_meta
from loadkit.server import ReferenceServer

from .conftest import FAST

REAL_KEY = "tr_dev_cleanup_test_key"


def _items(batch) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(batch.chunks()).splitlines() if line]


def test_every_item_carries_the_run_tags_against_a_real_target():
    """tag_runs (on by default) tags every item loadkit and loadkit:<run id>; off or embedded:
    no tags; the tags stay within 128 characters and 10 per run."""
    opts = parse_options(items="50", options="tags,queue", options_rate="0.3", seed="3")
    long_id = "r" * 200
    tagged = _items(opts.spec_for(long_id, embedded=False).batch(0))
    plain = _items(opts.spec.batch(0))
    for item, before in zip(tagged, plain, strict=True):
        tags = item["options"]["tags"]
        assert tags[:2] == ["loadkit", f"loadkit:{long_id}"[:128]]
        assert len(tags) <= wire.TAGS_MAX_PER_RUN
        assert all(len(t) <= wire.TAG_MAX_CHARS for t in tags)
        own = before.get("options", {}).get("tags", [])
        assert [t for t in own if t != "loadkit"] == tags[2:]  # its own tags kept after them
        assert wire.item_schema_error(item) is None
    assert opts.spec_for("x", embedded=True) is opts.spec
    off = parse_options(items="5", tag_runs="false")
    assert off.spec_for("x", embedded=False) is off.spec
    assert off.settings["tag_runs"] is False


def test_merge_tags_keeps_the_run_tags_first_and_ten_at_most():
    """An item with many tags keeps as many of its own as fit after the two run tags."""
    own = [f"t{i}" for i in range(12)]
    merged = wire.merge_tags(wire.run_tags("run1"), own)
    assert merged == ["loadkit", "loadkit:run1", *own[:8]]


@pytest.fixture
def real_target():
    """A reference server standing in for a real target (its own key, started apart)."""
    with ReferenceServer(mode="process", secret_keys=(REAL_KEY,)) as srv:
        yield srv


def _load_test(srv: ReferenceServer, run_dir: Path, batches: int = 3) -> int:
    """A small load test's run directory against ``srv``; returns the runs it made."""
    from loadkit.client import BatchClient  # noqa: PLC0415

    run_dir.mkdir()
    opts = parse_options(items="20", payload_bytes="50")
    spec = opts.spec_for(run_dir.name, embedded=False)
    rows = []
    with BatchClient(srv.url, REAL_KEY, retry=FAST, verify=True, verify_timeout=10) as client:
        for seq in range(batches):
            result = client.send(spec.batch(seq))
            assert result.sealed
            assert result.verified is True
            rows.append(result.to_record(run_id=run_dir.name, worker_id="w", user_id=0))
    (run_dir / RECORDS_JSONL).write_bytes(b"".join(orjson.dumps(r.as_dict()) + b"\n"
                                                   for r in rows))
    write_run_meta(run_dir, {"run_id": run_dir.name, "target": srv.url,
                             "embedded_server": None})
    return sum(r.run_count for r in rows)


def _cleanup(run_dir: Path, *args: str, key: str | None = REAL_KEY,
             host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRIGGER_SECRET_KEY",
                                                            "TRIGGER_API_URL")}
    if key is not None:
        env["TRIGGER_SECRET_KEY"] = key
    argv = [sys.executable, "-m", "loadkit", "cleanup", str(run_dir), *args,
            *(["--host", host] if host else [])]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def _stats(srv: ReferenceServer) -> dict:
    return httpx.get(srv.url + wire.STATS_PATH).json()


def test_cleanup_cancels_every_run_and_resumes(real_target, tmp_path):
    """Dry run counts; cleanup cancels every run once; a rerun finds nothing left to do."""
    run_dir = tmp_path / "run-cleanup"
    runs = _load_test(real_target, run_dir)
    dry = _cleanup(run_dir, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would cancel {runs} runs of 3 batches" in dry.stderr
    assert _stats(real_target)["runs_canceled"] == 0
    done = _cleanup(run_dir)
    assert done.returncode == 0, done.stderr
    assert f"canceled {runs} runs of 3 batches" in done.stderr
    assert "[3/3]" in done.stderr
    assert _stats(real_target)["runs_canceled"] == runs
    state = orjson.loads((run_dir / "cleanup.json").read_bytes())
    assert (len(state["done"]), state["canceled"]) == (3, runs)
    again = _cleanup(run_dir)
    assert again.returncode == 0, again.stderr
    assert "3 done before, 0 to go" in again.stderr
    assert REAL_KEY not in done.stderr + (run_dir / "cleanup.json").read_text()


def test_cancel_route_answers_as_the_real_one(real_target):
    """POST /api/v2/runs/{id}/cancel: 200 {id} for a run of the environment, 404 otherwise."""
    headers = {"authorization": f"Bearer {REAL_KEY}"}
    with httpx.Client(base_url=real_target.url, headers=headers) as http:
        bid = http.post(wire.CREATE_PATH, json={"runCount": 1}).json()["id"]
        http.post(wire.stream_path(bid), content=b'{"index":0,"task":"t"}\n',
                  headers={"content-type": wire.NDJSON_CONTENT_TYPE})
        deadline = time.monotonic() + 5
        while not (runs := http.get(wire.retrieve_path(bid)).json()["runs"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r = http.post(wire.cancel_run_path(runs[0]))
        assert (r.status_code, r.json()) == (200, {"id": runs[0]})
        assert http.post(wire.cancel_run_path(runs[0])).status_code == 200
        missing = http.post(wire.cancel_run_path("run_doesnotexist_0"))
        assert (missing.status_code, missing.json()) == (404, {"error": "Resource not found"})


def test_cleanup_of_an_embedded_run_has_nothing_to_clean(tmp_path):
    """A run against the embedded server: nothing to clean, exit 0, no key needed."""
    run_dir = tmp_path / "embedded"
    run_dir.mkdir()
    write_run_meta(run_dir, {"run_id": "embedded", "target": "http://127.0.0.1:1",
                             "embedded_server": {"port": 1}})
    done = _cleanup(run_dir, key=None)
    assert done.returncode == 0
    assert "nothing to clean" in done.stderr


def test_cleanup_without_a_key_is_a_config_error(real_target, tmp_path):
    """No TRIGGER_SECRET_KEY: one line naming it, exit 2, nothing canceled."""
    run_dir = tmp_path / "nokey"
    _load_test(real_target, run_dir, batches=1)
    done = _cleanup(run_dir, key=None)
    assert done.returncode == 2
    assert "TRIGGER_SECRET_KEY" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _stats(real_target)["runs_canceled"] == 0
