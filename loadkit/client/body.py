"""Internal: the request body of a stream: yields the batch's chunks and times each one's write.

This is where backpressure is measured. A chunk's *write* lasts from handing it to the
transport (the generator yields it) until the transport asks for the next one. Its *stall* is
the part of that write the socket made it wait because the target was not reading
(:class:`~loadkit.client.transport.WriteMeter`, counted by the metered sockets of
:mod:`loadkit.client.transport`). The per-chunk work is a handful of float operations: this
sits on the hot path of every byte sent.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator

from loadkit.client.result import ChunkTimings
from loadkit.client.transport import WriteMeter

__all__ = ["TimedBody", "lines_in_prefix"]


class TimedBody:
    """The request body: yields the chunks and times each one's write.

    A chunk's write lasts from handing it to the transport (the yield) until the transport
    asks for the next one: ``write`` (framing, the kernel's copy, any wait). Its *stall* is
    the part the socket made it wait for the target (``meter``: :mod:`loadkit.transport`);
    when the write did not go through the metered socket (a transport given by the caller),
    nothing tells the wait from the copy and the stall is the whole write. The chunked
    body's end marker is written after the last chunk; its wait is charged to that chunk.
    ``lines`` is the known number of lines in the whole body (None: count them per chunk,
    which costs ~20 µs per 64 KiB chunk, so ``send`` passes the count it knows).
    """

    __slots__ = ("_gen", "bytes", "chunks", "counted", "done", "last_stall", "lines",
                 "max_stall", "meter", "n", "pending_blocked", "pending_since", "pending_writes",
                 "stall", "t0", "t_last", "timings", "write")

    def __init__(self, chunks: Iterable[bytes], timings: ChunkTimings | None,
                 lines: int | None, meter: WriteMeter | None) -> None:
        self.chunks = chunks
        self.timings = timings
        self.lines = lines
        self.meter = meter
        self.counted = 0
        self.bytes = 0
        self.n = 0
        self.stall = 0.0
        self.max_stall = 0.0
        self.last_stall = 0.0
        self.write = 0.0
        self.done = False
        self.t0 = time.perf_counter()
        self.t_last: float | None = None
        self.pending_since: float | None = None
        self.pending_blocked = 0.0
        self.pending_writes = 0
        self._gen = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self._gen

    def close(self) -> None:
        self._gen.close()

    def _stalled(self, elapsed: float) -> float:
        """The pending write's stall, ``elapsed`` seconds after it was handed over."""
        meter = self.meter
        if meter is None or meter.writes == self.pending_writes:
            return elapsed
        return meter.blocked - self.pending_blocked

    def end_pending(self, t_end: float) -> None:
        """Count the write that was still pending when the request failed at ``t_end``."""
        if self.pending_since is not None:
            elapsed = t_end - self.pending_since
            stalled = self._stalled(elapsed)
            self.write += elapsed
            self.stall += stalled
            self.max_stall = max(self.max_stall, stalled)
            self.pending_since = None

    def end_body(self) -> None:
        """Once the request is over: count the wait of the body's end marker, if any."""
        meter = self.meter
        if meter is None or not self.done:
            return
        extra = meter.blocked - self.pending_blocked
        if extra <= 0.0:
            return
        self.pending_blocked = meter.blocked
        self.stall += extra
        self.write += extra
        self.last_stall += extra
        self.max_stall = max(self.max_stall, self.last_stall)
        timings = self.timings
        if timings is not None and len(timings):
            timings.stall_ms[-1] += extra * 1000.0
            timings.write_ms[-1] += extra * 1000.0

    def _run(self) -> Generator[bytes, None, None]:
        perf = time.perf_counter
        timings = self.timings
        meter = self.meter
        count = self.lines is None
        for chunk in self.chunks:
            size = len(chunk)
            if not size:
                continue
            if meter is not None:
                self.pending_blocked = meter.blocked
                self.pending_writes = meter.writes
            t = perf()
            self.pending_since = t
            yield chunk
            elapsed = perf() - t
            stalled = self._stalled(elapsed)
            self.pending_since = None
            self.bytes += size
            self.n += 1
            self.write += elapsed
            self.stall += stalled
            self.last_stall = stalled
            self.max_stall = max(self.max_stall, stalled)
            if count:
                self.counted += chunk.count(b"\n")
            if timings is not None:
                timings.at_ms.append((t - self.t0) * 1000.0)
                timings.write_ms.append(elapsed * 1000.0)
                timings.stall_ms.append(stalled * 1000.0)
                timings.size.append(size)
        if count:
            self.lines = self.counted
        if meter is not None:
            self.pending_blocked = meter.blocked
        self.t_last = perf()
        self.done = True


def lines_in_prefix(chunks: Iterable[bytes], nbytes: int) -> int:
    """Lines in the first ``nbytes`` of a regenerated body (whole chunks only were counted)."""
    total = lines = 0
    for chunk in chunks:
        if total >= nbytes:
            break
        take = chunk[: nbytes - total]
        lines += take.count(b"\n")
        total += len(take)
    return lines
