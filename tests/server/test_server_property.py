"""Property-based tests: NDJSON bodies split at arbitrary chunk boundaries parse the same."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadkit import wire
from loadkit.server.ingest import StreamIngest
from loadkit.server.state import Batch, Stats

from .conftest import Api

RUN_COUNT = 20
LIMIT = 256

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
items = st.builds(
    lambda i, t, p: orjson.dumps({"index": i, "task": t, "payload": p}),
    st.integers(0, RUN_COUNT - 1),
    texts,
    texts | st.integers(-(2**63), 2**63 - 1) | st.none(),
)
blank = st.sampled_from([b"", b" ", b"\t", b"\r"])
line_lists = st.lists(st.one_of(items, items, items, blank), max_size=30)


def _body(lines: list[bytes], eol: bytes, final_newline: bool) -> bytes:
    body = eol.join(lines)
    return body + eol if final_newline and lines else body


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points) if b > a]


def _ingest(chunks: list[bytes], item_max_bytes: int = 3_145_728, slow: bool = False):
    batch = Batch("batch_test", 0, RUN_COUNT, (), None)
    ingest = StreamIngest(batch, Stats(), item_max_bytes, slow)
    for chunk in chunks:
        ingest.feed(chunk)
    ingest.finish()
    if slow:
        ingest.commit(len(ingest.claimed))
    return ingest, batch


def _expected(lines: list[bytes]) -> tuple[int, int]:
    indices = [orjson.loads(x)["index"] for x in lines if x.strip()]
    return len(set(indices)), len(indices) - len(set(indices))


@settings(max_examples=300, deadline=None)
@given(
    line_lists,
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_any_chunking_gives_the_same_answer(lines, eol, final_newline, cuts):
    """Splitting a body anywhere (mid-token, mid-UTF-8) never changes accepted/deduplicated."""
    body = _body(lines, eol, final_newline)
    ingest, batch = _ingest(_split(body, cuts))
    assert ingest.error is None
    assert (ingest.accepted, ingest.deduplicated) == _expected(lines)
    assert batch.enqueued == ingest.accepted


@settings(max_examples=60, deadline=None)
@given(line_lists, st.booleans())
def test_one_byte_per_chunk_gives_the_same_answer(lines, slow):
    """One byte per chunk, in fast or slow (claimed, paced) mode, parses like one chunk."""
    body = _body(lines, b"\n", True)
    ingest, _ = _ingest([body[i : i + 1] for i in range(len(body))], slow=slow)
    assert ingest.error is None
    assert (ingest.accepted, ingest.deduplicated) == _expected(lines)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=60), max_size=12),
    st.lists(st.integers(0, 1000), max_size=8),
    st.sampled_from([64, LIMIT, 3_145_728]),
)
def test_arbitrary_bytes_never_raise(lines, cuts, limit):
    """Any bytes at any chunking end in counts or a 400/422 error, never an exception."""
    body = b"\n".join(lines)
    ingest, batch = _ingest(_split(body, cuts), item_max_bytes=limit)
    if ingest.error is not None:
        assert ingest.error.status in (400, 422)
    assert batch.enqueued == ingest.accepted
    one, _ = _ingest([body], item_max_bytes=limit)
    assert (one.accepted, one.deduplicated) == (ingest.accepted, ingest.deduplicated)
    assert (one.error and one.error.message) == (ingest.error and ingest.error.message)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, RUN_COUNT - 1), st.integers(0, 3 * LIMIT)), max_size=12),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_oversized_lines_at_any_chunking(specs, cuts):
    """Oversized lines become pre-failed placeholders wherever the chunk boundaries fall."""
    lines = [orjson.dumps({"index": i, "task": "t", "payload": "x" * n}) for i, n in specs]
    body = b"\n".join(lines)
    ingest, batch = _ingest(_split(body, cuts), item_max_bytes=LIMIT)
    assert ingest.error is None
    first: dict[int, bool] = {}
    for (i, _), line in zip(specs, lines, strict=True):
        first.setdefault(i, len(line) > LIMIT)
    assert ingest.accepted == len(first)
    assert set(batch.prefailed) == {i for i, big in first.items() if big}


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**53 - 1),
    texts,
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("index", "task", "options")),
        st.none() | st.integers() | texts,
        max_size=4,
    ),
)
def test_plain_items_are_valid_items(index, task, extra):
    """The ingest fast path's plain shape (int index ≥ 0, str task, no options) is always valid."""
    assert wire.item_schema_error({**extra, "index": index, "task": task}) is None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line_lists, st.lists(st.integers(0, 10_000), max_size=12))
def test_chunking_over_http(server, lines, cuts):
    """Over loopback, any chunking of a body gives the in-process parser's answer."""
    body = _body(lines, b"\n", False)
    with Api(server.url) as api:
        bid = api.new_batch(RUN_COUNT)
        r = api.stream(bid, _split(body, cuts) or [b" "])
    accepted, dup = _expected(lines)
    assert r.status_code == 200
    assert (r.json()["itemsAccepted"], r.json()["itemsDeduplicated"]) == (accepted, dup)
