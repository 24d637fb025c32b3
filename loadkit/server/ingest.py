"""Phase-2 ingest: an NDJSON body read chunk by chunk, each chunk parsed in one tight loop.

``StreamIngest.feed(chunk)`` splits a body chunk on ``\\n``, joins a line split across chunks,
parses each line with orjson, checks it against the item schema, deduplicates its index on the
batch's marks and enqueues it, all without an await or a task per item. Only when an enqueue
delay or an ingest rate cap is configured (``slow``) are items first *claimed* and then
enqueued in groups by the app's pacing, which is when the server stops reading the body.

Memory stays flat: a partial line is kept only up to ``item_max_bytes``; a longer line is cut
off, skipped through its newline, and becomes a PAYLOAD_TOO_LARGE placeholder whose index is
read from its first bytes (``wire.index_from_prefix``) or, failing that, is the line's
position among the item lines of this stream (0-based, empty lines not counted).
"""

from __future__ import annotations

import orjson

from loadkit import wire
from loadkit.server.state import Batch, Marks, Stats

__all__ = ["IngestError", "StreamIngest"]

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_BLANK = object()


class IngestError:
    """The first error of a stream: HTTP status, message and a short reason for the stats."""

    __slots__ = ("message", "reason", "status")

    def __init__(self, status: int, message: str, reason: str) -> None:
        self.status, self.message, self.reason = status, message, reason


class StreamIngest:
    """One stream request's parser state; feed it body chunks, then call ``finish``."""

    def __init__(self, batch: Batch, stats: Stats, item_max_bytes: int, slow: bool) -> None:
        self.batch = batch
        self.stats = stats
        self.max = item_max_bytes
        self.slow = slow
        self.pending = bytearray()
        self.skipping = False
        self.skip_prefix = b""
        self.skip_size = 0
        self.lines = 0
        """Physical lines completed so far (1-based line of the next one = lines + 1)."""
        self.items_seen = 0
        """Non-empty lines completed so far (the position of an oversized line without index)."""
        self.accepted = 0
        self.deduplicated = 0
        self.claimed: list[int] = []
        """Slow mode: indices read and deduplicated whose enqueue has not finished yet."""
        self.error: IngestError | None = None

    # -- chunks ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Consume one body chunk (stops at the first error, see ``error``)."""
        self.stats.bytes_read += len(chunk)
        if self.error is not None:
            return
        if self.skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                self.skip_size += len(chunk)
                return
            self.skip_size += nl
            self._end_skip()
            if self.error is not None:
                return
            chunk = chunk[nl + 1 :]
        if self.pending:
            nl = chunk.find(b"\n")
            if nl < 0:
                if len(self.pending) + len(chunk) > self.max:
                    self._start_skip(
                        bytes(self.pending[: wire.INDEX_PREFIX_BYTES])
                        + chunk[: wire.INDEX_PREFIX_BYTES],
                        len(self.pending) + len(chunk),
                    )
                    self.pending = bytearray()
                else:
                    self.pending += chunk
                return
            self.pending += chunk[:nl]
            line = bytes(self.pending)
            self.pending = bytearray()
            self._lines([line], True)
            if self.error is not None:
                return
            chunk = chunk[nl + 1 :]
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if parts:
            self._lines(parts, len(chunk) > self.max)
            if self.error is not None:
                return
        if tail:
            if len(tail) > self.max:
                self._start_skip(tail[: wire.INDEX_PREFIX_BYTES], len(tail))
            else:
                self.pending += tail

    def finish(self) -> None:
        """The body ended: a last line without a trailing newline still counts."""
        if self.error is not None:
            return
        if self.skipping:
            self._end_skip()
        elif self.pending:
            line = bytes(self.pending)
            self.pending = bytearray()
            self._lines([line], True)

    # -- lines ----------------------------------------------------------------------------

    def _lines(self, parts: list[bytes], check_size: bool) -> None:
        """The hot loop: parse, check, deduplicate and enqueue every complete line of a chunk."""
        batch = self.batch
        marks = batch.marks
        run_count = batch.run_count
        slow = self.slow
        mark = Marks.CLAIMED if slow else Marks.ENQUEUED
        claim = self.claimed.append
        schema_error = wire.item_schema_error
        maxb = self.max
        new = dup = blanks = 0
        k = -1
        for k, line in enumerate(parts):
            if check_size and len(line) > maxb:
                self._oversized(
                    line[: wire.INDEX_PREFIX_BYTES], len(line), self.items_seen + k - blanks
                )
                if self.error is not None:
                    break
                continue
            try:
                item = _loads(line)
            except _JSONDecodeError:
                item = self._bad_line(line, self.lines + k + 1)
                if item is _BLANK:
                    blanks += 1
                    continue
                if self.error is not None:
                    break
            # The plain shape {index: int >= 0, task: str, no options} is a valid
            # BatchItemNDJSON (tests/server pin this against wire.item_schema_error);
            # anything else goes through the one schema check in wire.
            if type(item) is dict and "options" not in item:
                index = item.get("index")
                if not (type(index) is int and index >= 0 and type(item.get("task")) is str):
                    detail = schema_error(item)
                    if detail is not None:
                        self._fail(
                            422,
                            wire.msg.invalid_item(
                                _index_label(item, self.items_seen + k - blanks), detail
                            ),
                            "invalid_item",
                        )
                        break
                    index = item["index"]
            else:
                detail = schema_error(item)
                if detail is not None:
                    self._fail(
                        422,
                        wire.msg.invalid_item(
                            _index_label(item, self.items_seen + k - blanks), detail
                        ),
                        "invalid_item",
                    )
                    break
                index = item["index"]
            if index >= run_count:
                self._fail(422, wire.msg.index_out_of_range(index, run_count), "index_out_of_range")
                break
            if marks[index]:
                dup += 1
            else:
                marks[index] = mark
                new += 1
                if slow:
                    claim(index)
        done = k + 1
        self.lines += done
        self.items_seen += done - blanks
        stats = self.stats
        stats.lines_read += done - blanks
        self.deduplicated += dup
        stats.items_deduplicated += dup
        if new and not slow:
            self.accepted += new
            batch.enqueued += new
            stats.add_ingest(new)

    def _bad_line(self, line: bytes, lineno: int) -> object:
        """A line orjson refused: blank (skipped), JSON after a Unicode trim, or an error."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(400, wire.msg.invalid_utf8(lineno), "invalid_utf8")
            return None
        text = text.strip()
        if not text:
            return _BLANK
        try:
            return _loads(text)
        except _JSONDecodeError:
            self._fail(400, wire.msg.invalid_json(lineno), "invalid_json")
            return None

    def _fail(self, status: int, message: str, reason: str) -> None:
        self.error = IngestError(status, message, reason)
        self.stats.rejected[reason] += 1

    # -- oversized lines ------------------------------------------------------------------

    def _start_skip(self, prefix: bytes, size: int) -> None:
        self.skipping = True
        self.skip_prefix = prefix[: wire.INDEX_PREFIX_BYTES]
        self.skip_size = size

    def _end_skip(self) -> None:
        self.skipping = False
        position = self.items_seen
        self.lines += 1
        self.items_seen += 1
        self.stats.lines_read += 1
        self._oversized(self.skip_prefix, self.skip_size, position)
        self.skip_prefix = b""

    def _oversized(self, prefix: bytes, size: int, position: int) -> None:
        """Enqueue the PAYLOAD_TOO_LARGE placeholder of an oversized line."""
        batch = self.batch
        self.stats.items_oversized += 1
        index, task = wire.index_from_prefix(prefix)
        if index is None:
            index = position
        detail = wire.item_schema_error({"index": index, "task": task or ""})
        if detail is not None:
            self._fail(422, wire.msg.invalid_item(index, detail), "invalid_item")
            return
        if index >= batch.run_count:
            self._fail(
                422, wire.msg.index_out_of_range(index, batch.run_count), "index_out_of_range"
            )
            return
        if batch.marks[index]:
            self.deduplicated += 1
            self.stats.items_deduplicated += 1
            return
        batch.prefailed[index] = (task, wire.msg.payload_too_large(size, self.max))
        if self.slow:
            batch.marks[index] = Marks.CLAIMED_FAILED
            self.claimed.append(index)
        else:
            batch.marks[index] = Marks.ENQUEUED_FAILED
            self.accepted += 1
            batch.enqueued += 1
            self.stats.add_ingest(1)

    # -- slow enqueue ---------------------------------------------------------------------

    def commit(self, count: int) -> None:
        """Finish the enqueue of the first ``count`` claimed indices."""
        group = self.claimed[:count]
        del self.claimed[:count]
        marks = self.batch.marks
        for i in group:
            marks[i] = Marks.ENQUEUED if marks[i] == Marks.CLAIMED else Marks.ENQUEUED_FAILED
        self.accepted += len(group)
        self.batch.enqueued += len(group)
        self.stats.add_ingest(len(group))

    def release(self) -> None:
        """The request ended before some claimed enqueues finished: forget those claims."""
        marks = self.batch.marks
        for i in self.claimed:
            if marks[i] == Marks.CLAIMED_FAILED:
                self.batch.prefailed.pop(i, None)
            marks[i] = Marks.EMPTY
        self.claimed.clear()


def _index_label(item: object, position: int) -> object:
    """What to call an invalid item in its error: its integer index, else its position."""
    if isinstance(item, dict):
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
    return position
