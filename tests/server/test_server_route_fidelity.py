"""Tests of the stream route's finer behaviour as the real route has it (docs/batch-api.md 5)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from loadkit import wire

from .conftest import Api, lines


def _one_per_chunk(api: Api, parts: list[bytes], base: int) -> Iterator[bytes]:
    """Yield each part once the server has read the previous one (so each is its own chunk)."""
    for k, part in enumerate(parts):
        if k:
            deadline = time.monotonic() + 5
            while api.stats()["bytes_read"] < sum(map(len, parts[:k])) + base:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        yield part


def _stream_in_chunks(api: Api, bid: str, parts: list[bytes]) -> httpx.Response:
    return api.stream(bid, _one_per_chunk(api, parts, api.stats()["bytes_read"]))


@pytest.mark.parametrize(
    "line",
    [
        b'\xef\xbb\xbf{"index":0,"task":"t"}',  # a BOM is whitespace to JavaScript's trim
        b'\xe2\x80\xa8{"index":0,"task":"t"}\xe3\x80\x80',  # U+2028 and U+3000 too
        b'{"index":0,"task":"t","payload":"\\udfff"}',  # a lone surrogate escape
        b'{"index":0,"task":"t","payload":1e400}',  # a number beyond a double
        b'{"index":1.0,"task":"t"}'.replace(b"1.0", b"0.0"),  # a whole-valued float index
        b'{"index":0e0,"task":"t","options":{"maxAttempts":3.0,"ttl":60.0}}',
        b'{"index":0,"task":"t","options":{"delay":true,"concurrencyKey":7}}',
    ],
)
def test_lines_json_parse_accepts_are_items(api, line):
    """Lines JavaScript's trim and JSON.parse accept are items, whole-valued numbers integers."""
    bid = api.new_batch(1)
    r = api.stream(bid, line + b"\n")
    assert r.status_code == 200, r.text
    assert r.json()["sealed"] is True


@pytest.mark.parametrize("lead", [b"\x1c", b"\x1f", b"\xc2\x85"])
def test_characters_python_strips_but_javascript_does_not_are_invalid_json(api, lead):
    """A line starting with \\x1c-\\x1f or U+0085 is invalid JSON (JavaScript's trim keeps them)."""
    bid = api.new_batch(1)
    r = api.stream(bid, lead + b'{"index":0,"task":"t"}\n')
    assert r.status_code == 400
    assert r.json()["error"].startswith(wire.msg.invalid_json(1) + ": ")


@pytest.mark.parametrize(
    "options",
    [
        None, {"tags": None}, {"ttl": None}, {"ttl": -1}, {"ttl": 1.5}, {"machine": "huge"},
        {"queue": {}}, {"tags": ["x" * 129]}, {"idempotencyKeyOptions": {"key": "k", "scope": "x"}},
        {"debounce": {"key": "k", "delay": "1s", "mode": "sideways"}},
    ],
)
def test_options_are_validated_as_strictly_as_the_real_schema(api, options):
    """Each of the option values the real route refuses answers 422 at the item's index."""
    bid = api.new_batch(1)
    r = api.stream(bid, orjson.dumps({"index": 0, "task": "t", "options": options}) + b"\n")
    assert r.status_code == 422
    assert wire.stable_prefix(r.json()["error"]) == "Invalid item at index 0"


def test_invalid_item_without_a_numeric_index_is_at_unknown_index(api):
    """A line that is not an object, or has no numeric index, is 'at unknown index'."""
    bid = api.new_batch(1)
    for body in (b"[1]\n", b'{"index":"0","task":"t"}\n', b"null\n"):
        r = api.stream(bid, body)
        assert r.status_code == 422
        assert r.json()["error"].startswith("Invalid item at unknown index: ")


def test_oversized_index_is_read_at_top_level_only(api):
    """An oversized line's index comes from a top-level unsigned 'index' only, else position;
    "index": -1 is therefore accepted at its position, not refused."""
    bid = api.new_batch(4)
    nested = b'{"payload":{"index":3},"index":-1,"task":"t","p":"' + b"x" * 5000 + b'"}\n'
    r = api.stream(bid, lines([0]) + nested + lines([2, 3]))
    assert r.status_code == 200, r.text
    assert r.json()["itemsAccepted"] == 4


def test_parse_error_drops_the_rest_of_its_chunk_only(api):
    """A bad line drops the items of its own chunk after the chunk's first; earlier chunks stay."""
    bid = api.new_batch(6)
    r = _stream_in_chunks(api, bid, [lines([0, 1]), lines([2, 3, 4]) + b"{bad\n"])
    assert r.status_code == 400
    assert wire.stable_prefix(r.json()["error"]) == "Invalid JSON at line 6"
    r = api.stream(bid, lines(range(6)))
    assert r.json()["itemsAccepted"] == 3  # 3 and 4 were dropped, 5 was never sent
    assert r.json()["sealed"] is True


def test_which_error_wins_depends_on_the_cut(api):
    """Schema error on line 2, bad JSON on line 3: one chunk → 400 at line 3; two → 422 at 1."""
    body = [lines([0]) + b'{"index":1,"task":5}\n', b"{bad\n"]
    together = api.stream(api.new_batch(3), b"".join(body))
    assert together.status_code == 400
    assert wire.stable_prefix(together.json()["error"]) == "Invalid JSON at line 3"
    apart = _stream_in_chunks(api, api.new_batch(3), body)
    assert apart.status_code == 422
    assert wire.stable_prefix(apart.json()["error"]) == "Invalid item at index 1"


def test_out_of_range_text_is_the_real_one(api):
    """index ≥ runCount answers 'Item index N exceeds batch runCount M'."""
    r = api.stream(api.new_batch(2), lines([5]))
    assert r.json()["error"] == "Item index 5 exceeds batch runCount 2"
