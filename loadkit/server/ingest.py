"""Internal: phase-2 ingest: an NDJSON body read chunk by chunk, each chunk in one tight loop.

``StreamIngest.feed(chunk)`` splits a body chunk on ``\\n``, joins a line split across chunks,
parses each line with orjson, checks it against the item schema, deduplicates its index on the
batch's marks and enqueues it, all without an await or a task per item. Only when an enqueue
delay or an ingest rate cap is configured (``slow``) are items first *claimed* and then
enqueued in groups by the app's pacing, which is when the server stops reading the body.

Claims across concurrent streams of one batch (slow mode only): a stream that meets an index
another stream has claimed but not yet enqueued counts it neither as accepted nor as a
duplicate; it *waits* on it (``waiting``). If the other stream's enqueue finishes, the index is
this stream's duplicate; if the other stream ends first (a 408, a cancelled request) and
releases its claim, this stream claims and enqueues its own copy. ``resolve`` settles what can
be settled now; the app waits on ``Batch.claims_changed`` for the rest before it answers, so
every index is enqueued exactly once and the streams' ``itemsAccepted`` add up to runCount. A
stream never waits while it holds claims of its own, so two streams cannot wait on each other.

Memory stays flat: a partial line is kept only up to ``item_max_bytes``; a longer line is cut
off, skipped through its newline, and becomes a PAYLOAD_TOO_LARGE placeholder (emitted as soon
as it is known to be too long, as the real parser does) whose index is read from its first
bytes (``wire.index_from_prefix``) or, failing that, is the line's position among the item
lines of this stream (0-based, empty lines not counted).

A parse error (invalid JSON or UTF-8) drops the rest of the chunk it arrived in, as on the real
route (docs/batch-api.md, section 5.4): the items this chunk had already enqueued are undone,
except the first object the chunk produced, and a schema or range error earlier in the same
chunk (not its first object) loses to the parse error. Each chunk keeps a journal of the
indices it newly marked (or claimed) for that.
"""

from __future__ import annotations

import orjson

from loadkit import wire
from loadkit.server.state import Batch, Marks, Stats

__all__ = ["IngestError", "StreamIngest"]

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_BLANK = object()
_MISSING = object()
_UNSET = -2


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
        self._own: set[int] = set()
        """Slow mode: ``claimed`` as a set (an index claimed by this stream, not another)."""
        self.waiting: dict[int, tuple[str | None, str] | None] = {}
        """Slow mode: indices another stream has claimed, whose enqueue this stream awaits →
        this stream's own pre-failed entry when its copy was oversized, else None."""
        self.error: IngestError | None = None
        self._chunk_blanks = self._chunk_new = self._chunk_dup = 0
        self._journal: list[int] = []
        """Fast mode: indices newly marked by the current chunk, in order."""
        self._claim_start = 0
        """Slow mode: where the current chunk's claims start in ``claimed``."""
        self._first = _UNSET
        """The index of the first object the current chunk produced (-1: a line that produced
        none yet failed; ``_UNSET``: not known yet)."""
        self._parse_failed = False

    # -- chunks ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Consume one body chunk (stops at the first error, see ``error``)."""
        self.stats.bytes_read += len(chunk)
        if self.error is not None:
            return
        self._begin_chunk()
        self._feed(chunk)
        if self._parse_failed:
            self._drop_chunk()

    def _feed(self, chunk: bytes) -> None:
        if self.skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                self.skip_size += len(chunk)
                return
            self.skip_size += nl
            self._end_skip()
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
            self._begin_chunk()
            line = bytes(self.pending)
            self.pending = bytearray()
            self._lines([line], True)
            if self._parse_failed:
                self._drop_chunk()

    # -- chunks: a parse error drops the rest of its chunk ----------------------------------

    def _begin_chunk(self) -> None:
        self._journal.clear()
        self._claim_start = len(self.claimed)
        self._first = _UNSET
        self._parse_failed = False

    def _first_of(self, parts: list[bytes], k: int) -> int:
        """The index of the first object this chunk produced, looking at ``parts[:k]`` when
        nothing before ``parts`` did (-1: an object without a usable index; ``_UNSET``: none
        yet)."""
        if self._first != _UNSET:
            return self._first
        position = self.items_seen
        for line in parts[:k]:
            if len(line) > self.max:
                index, _ = wire.index_from_prefix(line[: wire.INDEX_PREFIX_BYTES])
                return position if index is None else index
            item = _parse_quietly(line)
            if item is not _BLANK:
                index = wire.item_index(item)
                return -1 if index is None else index
        return _UNSET

    def _drop_chunk(self) -> None:
        """After a parse error: undo what this chunk enqueued (or claimed), except the first
        object it produced, which the real route had already handed on."""
        first = self._first
        batch = self.batch
        if self.slow:
            mine = self.claimed[self._claim_start :]
            drop = mine[1:] if mine and mine[0] == first else mine
            if drop:
                gone = set(drop)
                del self.claimed[self._claim_start :]
                self.claimed += [i for i in mine if i not in gone]
                for i in drop:
                    batch.marks[i] = Marks.EMPTY
                    batch.prefailed.pop(i, None)
                    self._own.discard(i)
                batch.claims_changed()
            return
        journal = self._journal
        drop = journal[1:] if journal and journal[0] == first else journal
        if not drop:
            return
        for i in drop:
            batch.marks[i] = Marks.EMPTY
            batch.prefailed.pop(i, None)
        n = len(drop)
        self.accepted -= n
        batch.enqueued -= n
        self.stats.add_ingest(-n)

    # -- lines ----------------------------------------------------------------------------

    def _lines(self, parts: list[bytes], check_size: bool) -> None:
        """The hot loop: parse, check, deduplicate and enqueue every complete line of a chunk.

        The common line, ``{"index": <int in range>, "task": <str>, ...}`` without
        ``options``, is a valid BatchItemNDJSON (a test pins this against
        ``wire.item_schema_error``) and is handled inline: no call, no await, no allocation
        beyond orjson's. Every other line (options, blanks, errors, oversized; every line in
        slow mode, where enqueue is paced anyway) goes through ``_line`` and the one schema
        check in ``wire``.
        """
        batch = self.batch
        self._chunk_blanks = 0
        self._chunk_new = 0
        self._chunk_dup = 0
        if check_size or self.slow:
            line_of = self._line
            for k, line in enumerate(parts):
                if not line_of(line, _MISSING, parts, k):
                    break
            else:
                k = len(parts)
            self._count(k, 0, 0)
            self._note_first(parts)
            return
        marks = batch.marks
        journal = self._journal.append
        run_count = batch.run_count
        loads = _loads
        other = 0
        dup = 0
        for line in parts:
            try:
                item = loads(line)
                index = item["index"]
                task = item["task"]
            except Exception:
                item = _MISSING
            else:
                if (
                    index.__class__ is int
                    and 0 <= index < run_count
                    and task.__class__ is str
                    and "options" not in item
                ):
                    if marks[index]:
                        dup += 1
                    else:
                        marks[index] = 1  # Marks.ENQUEUED
                        journal(index)
                    continue
            other += 1
            if not self._line(line, item, parts, None):
                k = _position(parts, line)
                self._count(k, k - (other - 1) - dup, dup)
                return
        plain = len(parts) - other
        self._count(len(parts), plain - dup, dup)
        self._note_first(parts)

    def _note_first(self, parts: list[bytes]) -> None:
        """After a chunk's lines went through without error: remember its first object."""
        if self._first == _UNSET and self.error is None:
            self._first = self._first_of(parts, len(parts))

    def _count(self, done: int, new: int, dup: int) -> None:
        """Book a chunk's lines: ``new``/``dup`` from the inline path plus ``_line``'s own."""
        blanks = self._chunk_blanks
        new += self._chunk_new
        dup += self._chunk_dup
        self.lines += done
        self.items_seen += done - blanks
        stats = self.stats
        stats.lines_read += done - blanks
        self.deduplicated += dup
        stats.items_deduplicated += dup
        if new:
            self.accepted += new
            self.batch.enqueued += new
            stats.add_ingest(new)

    def _line(self, line: bytes, item: object, parts: list[bytes], k: int | None) -> bool:
        """One line the inline path did not take; False when it ends the request."""
        if k is None:
            k = _position(parts, line)
        position = self.items_seen + k - self._chunk_blanks
        if len(line) > self.max:
            self._oversized(line[: wire.INDEX_PREFIX_BYTES], len(line), position)
            if self.error is not None:
                self._lost_to_parse_error(parts, k)
                return False
            return True
        if item is _MISSING:
            try:
                item = _loads(line)
            except _JSONDecodeError:
                item = self._bad_line(line, self.lines + k + 1)
                if item is _BLANK:
                    self._chunk_blanks += 1
                    return True
                if self.error is not None:
                    self._parse_failed = True
                    self._first = self._first_of(parts, k)
                    return False
        detail = wire.item_schema_error(item)
        if detail is not None:
            self._fail(422, wire.msg.invalid_item(wire.item_index_label(item), detail),
                       "invalid_item")
            self._lost_to_parse_error(parts, k)
            return False
        index = wire.item_index(item)
        assert index is not None
        batch = self.batch
        if index >= batch.run_count:
            self._fail(
                422, wire.msg.index_out_of_range(index, batch.run_count), "index_out_of_range"
            )
            self._lost_to_parse_error(parts, k)
            return False
        mark = batch.marks[index]
        if mark:
            if mark >= Marks.CLAIMED and self._claimed_elsewhere(index):
                self.waiting[index] = None
            else:
                self._chunk_dup += 1
        elif self.slow:
            if index in self.waiting:  # released meanwhile: the awaited copy came first
                self._chunk_dup += 1
            else:
                self._claim(index, None)
        else:
            batch.marks[index] = Marks.ENQUEUED
            self._journal.append(index)
            self._chunk_new += 1
        return True

    def _lost_to_parse_error(self, parts: list[bytes], k: int) -> None:
        """A schema or range error at ``parts[k]``: unless that line is the chunk's first
        object, a parse error later in the same chunk wins (the real parser reaches it before
        the item is validated)."""
        first = self._first_of(parts, k)
        if first == _UNSET:
            return  # parts[k] is the chunk's first object: it was handed on and validated
        for j in range(k + 1, len(parts)):
            line = parts[j]
            if len(line) > self.max:
                continue
            lineno = self.lines + j + 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                reason, message = "invalid_utf8", wire.msg.invalid_utf8(lineno)
            else:
                text = wire.js_trim(text)
                if not text:
                    continue
                try:
                    wire.json_parse(text)
                    continue
                except ValueError as exc:
                    reason, message = "invalid_json", wire.msg.invalid_json(lineno, str(exc))
            assert self.error is not None
            self.stats.rejected[self.error.reason] -= 1
            self._fail(400, message, reason)
            self._parse_failed = True
            self._first = first
            return

    def _bad_line(self, line: bytes, lineno: int) -> object:
        """A line orjson refused: blank (skipped), JSON after JavaScript's trim, JSON that only
        ``JSON.parse`` accepts (lone surrogates, ``1e400``), or an error."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(400, wire.msg.invalid_utf8(lineno), "invalid_utf8")
            return None
        text = wire.js_trim(text)
        if not text:
            return _BLANK
        try:
            return _loads(text)
        except _JSONDecodeError:
            pass
        try:
            return wire.json_parse(text)
        except ValueError as exc:
            self._fail(400, wire.msg.invalid_json(lineno, str(exc)), "invalid_json")
            return None

    def _fail(self, status: int, message: str, reason: str) -> None:
        self.error = IngestError(status, message, reason)
        self.stats.rejected[reason] += 1

    # -- oversized lines ------------------------------------------------------------------

    def _start_skip(self, prefix: bytes, size: int) -> None:
        """A line known to be too long before its end: its placeholder now, then skip."""
        self.skipping = True
        self.skip_prefix = prefix[: wire.INDEX_PREFIX_BYTES]
        self.skip_size = size
        position = self.items_seen
        self.items_seen += 1
        self.stats.lines_read += 1
        if self._first == _UNSET:
            index, _ = wire.index_from_prefix(self.skip_prefix)
            self._first = position if index is None else index
        self._oversized(self.skip_prefix, size, position)

    def _end_skip(self) -> None:
        self.skipping = False
        self.lines += 1
        self.skip_prefix = b""

    def _oversized(self, prefix: bytes, size: int, position: int) -> None:
        """Enqueue the PAYLOAD_TOO_LARGE placeholder of an oversized line (no schema check:
        the index comes from its first bytes or its position, the task may be unknown)."""
        batch = self.batch
        self.stats.items_oversized += 1
        index, task = wire.index_from_prefix(prefix)
        if index is None:
            index = position
        if index >= batch.run_count:
            self._fail(
                422, wire.msg.index_out_of_range(index, batch.run_count), "index_out_of_range"
            )
            return
        entry = (task or wire.UNKNOWN_TASK, wire.msg.payload_too_large(size, self.max))
        mark = batch.marks[index]
        if mark:
            if mark >= Marks.CLAIMED and self._claimed_elsewhere(index):
                self.waiting[index] = entry
            else:
                self.deduplicated += 1
                self.stats.items_deduplicated += 1
            return
        if self.slow:
            if index in self.waiting:  # released meanwhile: the awaited copy came first
                self.deduplicated += 1
                self.stats.items_deduplicated += 1
            else:
                self._claim(index, entry)
        else:
            batch.prefailed[index] = entry
            batch.marks[index] = Marks.ENQUEUED_FAILED
            self._journal.append(index)
            self.accepted += 1
            batch.enqueued += 1
            self.stats.add_ingest(1)

    # -- slow enqueue ---------------------------------------------------------------------

    def _claimed_elsewhere(self, index: int) -> bool:
        """A claimed index that is another stream's (and not already awaited by this one)."""
        return index not in self._own and index not in self.waiting

    def _claim(self, index: int, prefailed: tuple[str | None, str] | None) -> None:
        """Claim a free index; its enqueue finishes in ``commit`` (or is undone in ``release``)."""
        batch = self.batch
        if prefailed is None:
            batch.marks[index] = Marks.CLAIMED
        else:
            batch.marks[index] = Marks.CLAIMED_FAILED
            batch.prefailed[index] = prefailed
        self.claimed.append(index)
        self._own.add(index)

    def commit(self, count: int) -> None:
        """Finish the enqueue of the first ``count`` claimed indices."""
        group = self.claimed[:count]
        del self.claimed[:count]
        own = self._own
        marks = self.batch.marks
        for i in group:
            marks[i] = Marks.ENQUEUED if marks[i] == Marks.CLAIMED else Marks.ENQUEUED_FAILED
            own.discard(i)
        self.accepted += len(group)
        self.batch.enqueued += len(group)
        self.stats.add_ingest(len(group))
        self.batch.claims_changed()

    def release(self) -> None:
        """The request ended before some claimed enqueues finished: forget those claims, so
        that streams waiting on them (``waiting``) enqueue their own copies."""
        marks = self.batch.marks
        for i in self.claimed:
            if marks[i] == Marks.CLAIMED_FAILED:
                self.batch.prefailed.pop(i, None)
            marks[i] = Marks.EMPTY
        self.claimed.clear()
        self._own.clear()
        self.waiting.clear()
        self.batch.claims_changed()

    def resolve(self) -> int:
        """Settle the awaited indices whose claim has ended; returns how many still wait.

        Enqueued by the other stream → a duplicate of this one; released → claimed by this
        stream (its own copy, placeholder or not), to be enqueued by the app's pacing.
        """
        marks = self.batch.marks
        settled = [i for i in self.waiting if marks[i] < Marks.CLAIMED]
        for index in settled:
            prefailed = self.waiting.pop(index)
            if marks[index] == Marks.EMPTY:
                self._claim(index, prefailed)
            else:
                self.deduplicated += 1
                self.stats.items_deduplicated += 1
        return len(self.waiting)


def _parse_quietly(line: bytes) -> object:
    """A line parsed as the route parses it, ``_BLANK`` for a blank one, None on an error."""
    try:
        return _loads(line)
    except _JSONDecodeError:
        pass
    try:
        text = wire.js_trim(line.decode("utf-8"))
        return wire.json_parse(text) if text else _BLANK
    except ValueError:
        return None


def _position(parts: list[bytes], line: bytes) -> int:
    """Where ``line`` (the very object) sits in ``parts``: only computed on the rare paths."""
    for k, part in enumerate(parts):
        if part is line:
            return k
    raise ValueError("line not in parts")  # pragma: no cover
