"""Tests of concurrent streams to one batch in slow-enqueue mode (indices are claimed first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from loadkit.server import ReferenceServer
from loadkit.server.ingest import StreamIngest
from loadkit.server.state import Batch, Stats

from .conftest import Api, lines

RUN_COUNT = 320
# 5 items enqueued every 0.05 s: one stream enqueues at most 100 items/s.
SLOW = {"enqueue_delay": 0.05, "ingest_concurrency": 5, "max_items": RUN_COUNT}


def _wait_enqueued(api: Api, at_least: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while api.stats()["items_enqueued"] < at_least:
        assert time.monotonic() < deadline, "the first stream never got going"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("failure", "first_body", "first_status", "start_second_at", "timeout"),
    [
        # 320 claims take ≥ 3.2 s to enqueue: the 3 s timeout answers 408 and releases the rest.
        ("timeout", lines(range(RUN_COUNT)), 408, 150, 3.0),
        # 250 claims take ≥ 2.5 s; the error line after them, in a chunk of its own (a parse
        # error drops the rest of its own chunk only), ends the stream with a 400.
        ("error line", (lines(range(250)), b"{bad\n"), 400, 20, 30.0),
    ],
)
def test_second_stream_waits_for_claims_of_a_failing_stream(
    failure, first_body, first_status, start_second_at, timeout
):
    """A stream meeting indices another stream claimed waits for them, then seals the batch."""
    with ReferenceServer(mode="thread", request_timeout=timeout, **SLOW) as s, Api(s.url) as api:
        bid = api.new_batch(RUN_COUNT)
        first: list[httpx.Response] = []

        def chunks() -> Iterator[bytes]:
            if isinstance(first_body, bytes):
                yield first_body
                return
            head, bad = first_body
            yield head
            _wait_enqueued(api, 240)  # the head was read as a chunk of its own
            yield bad

        def stream_first() -> None:
            with Api(s.url) as mine:
                first.append(mine.stream(bid, chunks()))

        thread = threading.Thread(target=stream_first)
        thread.start()
        try:
            _wait_enqueued(api, start_second_at)  # the first stream holds claims now
            with Api(s.url) as other:
                second = other.stream(bid, lines(range(RUN_COUNT)))
        finally:
            thread.join(30)
        assert first[0].status_code == first_status, failure
        assert second.status_code == 200, second.text
        answer = second.json()
        assert answer["sealed"] is True, answer
        stats = api.stats()
        enqueued_by_first = RUN_COUNT - answer["itemsAccepted"]
        assert 0 < enqueued_by_first < RUN_COUNT
        # every index enqueued exactly once, and each of the second stream's lines counted once
        assert stats["items_enqueued"] == RUN_COUNT
        assert answer["itemsDeduplicated"] == enqueued_by_first
        assert stats["items_deduplicated"] == enqueued_by_first
        assert stats["batches_sealed"] == 1
        if failure == "timeout":
            assert stats["timeouts"] == 1
            assert enqueued_by_first <= 300  # the rest was released and taken over
        runs = api.retrieve(bid).json()["runs"]
        deadline = time.monotonic() + 5
        while len(runs) < RUN_COUNT and time.monotonic() < deadline:
            time.sleep(0.05)
            runs = api.retrieve(bid).json()["runs"]
        assert len(set(runs)) == RUN_COUNT


def test_a_stream_holding_no_claims_of_its_own_is_not_slowed_by_a_finished_one():
    """Indices already enqueued by another stream are duplicates at once, without waiting."""
    with ReferenceServer(mode="thread", **SLOW) as s, Api(s.url) as api:
        bid = api.new_batch(RUN_COUNT)
        assert api.stream(bid, lines(range(100))).json()["itemsAccepted"] == 100
        t0 = time.perf_counter()
        answer = api.stream(bid, lines(range(100))).json()
        assert time.perf_counter() - t0 < 0.5
        assert answer["itemsAccepted"] == 0
        assert answer["itemsDeduplicated"] == 100


def test_released_claim_is_taken_over_with_the_waiting_streams_own_copy():
    """A released oversized claim becomes the waiting stream's normal item, not a placeholder."""
    batch = Batch("batch_x", 0, 2, (), None)
    stats = Stats()
    first = StreamIngest(batch, stats, item_max_bytes=64, slow=True)
    second = StreamIngest(batch, stats, item_max_bytes=64, slow=True)
    first.feed(b'{"index":0,"task":"t","payload":"' + b"x" * 100 + b'"}\n')
    assert batch.prefailed
    assert first.claimed == [0]
    second.feed(lines([0, 0, 1]))
    assert second.waiting == {0: None}
    assert second.claimed == [1]
    assert second.deduplicated == 1  # its own second copy of index 0
    assert second.resolve() == 1  # still claimed by the first stream
    first.release()
    assert second.resolve() == 0
    second.commit(len(second.claimed))
    assert (second.accepted, second.deduplicated, batch.enqueued) == (2, 1, 2)
    assert not batch.prefailed
