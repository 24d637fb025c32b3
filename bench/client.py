"""Client speed and memory, all against one reference server (process mode) in one run.

Run: ``python bench/client.py [--items 50000] [--payload-bytes 100,256] [--rounds 40]
[--json PATH]``. Prints:

1. **loadkit vs one pre-encoded body**: items/s of ``BatchClient`` streaming a batch (lines
   generated on the fly, every chunk write timed) ÷ items/s of an httpx upload of the same
   bytes encoded beforehand and sent in one piece (target ≥ 0.9);
2. **loadkit vs one line per chunk**: ÷ an httpx upload whose body generator yields one line
   per chunk, as the official SDK's stream does (target ≥ 10×);
3. **the cost of measurement**: loadkit with ``keep_chunk_timings`` on vs a bare httpx
   upload of the same coalesced chunks with no timing at all (target ≤ 5 % apart);
4. **client memory**: peak RSS of a fresh process while sending a 1,000-item batch and a
   100,000-item batch, both with a first stream that leaves gaps so that a retry regenerates
   lines (target: growth ≤ 10 MB); and, to attribute it, the same for only generating the
   same lines (``chunks()`` + ``clean_chunks()``) without sending.

Items/s of a stream = run_count ÷ (request start → answer read), the batch created
beforehand (a fresh batch each time).

Rounds (``bench/_rounds.py``), per payload size: one discarded warm-up round, then
``--rounds`` rounds (``--runs`` is the same option; default 40) in which every variant sends
one batch, in alternating order (ABBA); the one-line-per-chunk variant sends
min(``--items``, 20,000) items (it is slow). Each round's ratios pair loadkit with the
variants run next to it in that round; each figure is the median of those ratios, its
spread on the line under it (the measurement cost: the median of the rounds' chunk timings ÷
bare − 1, its sign dropped on the figure's line, kept in the spread). The items/s shown are
the medians over the rounds. The memory part (4) is measured once, not in rounds (its
figure is the same from run to run within a few MB). Cost at the default sizes on a 2-core
machine: ~0.8 s per round per payload size, ~1.6 s per round for both (scaled from 0.5 s
per payload size at 20,000 items, where the one-line-per-chunk variant weighs most): ~65 s
of rounds plus ~10 s for the memory part.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import _rounds
import httpx
import psutil

from loadkit import wire
from loadkit.client import BatchClient, RetryPolicy
from loadkit.generators import BatchSpec, GeneratedBatch
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": wire.NDJSON_CONTENT_TYPE}


def _create(http: httpx.Client, batch: GeneratedBatch) -> str:
    r = http.post(wire.CREATE_PATH, json={"runCount": batch.run_count},
                  headers={"authorization": f"Bearer {KEY}"})
    r.raise_for_status()
    return r.json()["id"]


def _upload(http: httpx.Client, batch: GeneratedBatch, content: object) -> float:
    batch_id = _create(http, batch)
    t0 = time.perf_counter()
    r = http.post(wire.stream_path(batch_id), content=content, headers=HEADERS)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    assert r.json()["sealed"], r.text
    return batch.run_count / elapsed


def _loadkit(client: BatchClient, batch: GeneratedBatch) -> float:
    result = client.send(batch)
    assert result.ok, (result.error, result.violations)
    assert len(result.attempts) == 1
    return batch.run_count / (result.stream_ms / 1000.0)


def _bare_chunks(batch: GeneratedBatch) -> Iterator[bytes]:
    yield from batch.chunks()


def _one_line_per_chunk(batch: GeneratedBatch) -> Iterator[bytes]:
    yield from batch.lines()


def throughput(url: str, args: argparse.Namespace, payload_bytes: str,
               report: _rounds.Report) -> None:
    spec = BatchSpec.parse(items=str(args.items), payload_bytes=payload_bytes,
                           max_items=str(args.items))
    sdk_spec = spec.with_(items=str(min(args.items, 20_000)))
    http = httpx.Client(base_url=url, timeout=300)
    plain = BatchClient(url, KEY, retry=RetryPolicy.none())
    timed = BatchClient(url, KEY, retry=RetryPolicy.none(), keep_chunk_timings=True)
    seq = iter(range(10**6))

    def fresh(send: Callable[[GeneratedBatch], float],
              batches: BatchSpec = spec) -> Callable[[], float]:
        """A variant of a round: ``send`` a fresh batch, return its items/s."""
        return lambda: send(batches.batch(next(seq)))

    variants: dict[str, Callable[[], float]] = {
        "loadkit": fresh(lambda b: _loadkit(plain, b)),
        "loadkit+chunk timings": fresh(lambda b: _loadkit(timed, b)),
        "pre-encoded one piece": fresh(lambda b: _upload(http, b, b"".join(b.chunks()))),
        "bare coalesced chunks": fresh(lambda b: _upload(http, b, _bare_chunks(b))),
        "one line per chunk (SDK)": fresh(lambda b: _upload(http, b, _one_line_per_chunk(b)),
                                          sdk_spec),
    }
    got = _rounds.interleave(variants, args.rounds)
    med = {k: statistics.median(v) for k, v in got.values.items()}
    batch = spec.batch(0)
    size = sum(len(c) for c in batch.chunks())
    print(f"\nbatch: {args.items:,} items of {payload_bytes} B payload, {size / 1e6:.1f} MB, "
          f"chunks of {spec.chunk_bytes // 1024} KiB; median of {len(got)} rounds (SDK-style: "
          f"{sdk_spec.items} items)")
    print(f"  {got.timing_line()}")
    for name, value in med.items():
        print(f"  {name:<28} {value / 1e6:7.3f} M items/s")
    at = f" [{payload_bytes} B payload]"
    r1 = report.add("loadkit ÷ pre-encoded one piece" + at,
                    _rounds.ratios(got["loadkit"], got["pre-encoded one piece"]),
                    target=_rounds.at_least(0.9, "≥ 0.9"))
    r2 = report.add("loadkit ÷ one line per chunk (SDK)" + at,
                    _rounds.ratios(got["loadkit"], got["one line per chunk (SDK)"]),
                    target=_rounds.at_least(10, "≥ 10×"), unit="×", fmt=".1f")
    # signed per round (timings ÷ bare − 1, in %); the figure's line shows its size
    r3 = report.add("measurement cost, chunk timings vs bare (%)" + at,
                    [(r - 1) * 100 for r in _rounds.ratios(got["loadkit+chunk timings"],
                                                           got["bare coalesced chunks"])],
                    target=_rounds.within(-5, 5, "≤ 5 % either way"), unit=" %", fmt="+.1f")
    r3b = report.add("chunk timings kept vs not kept (%)" + at,
                     [(r - 1) * 100 for r in _rounds.ratios(got["loadkit+chunk timings"],
                                                            got["loadkit"])],
                     unit=" %", fmt="+.1f")
    print(f"loadkit ÷ pre-encoded one piece:        {r1.median:6.2f}   (target ≥ 0.9)")
    print(r1.spread_line())
    print(f"loadkit ÷ one line per chunk (SDK):     {r2.median:6.1f}×  (target ≥ 10×)")
    print(r2.spread_line())
    print(f"measurement cost, chunk timings vs bare: {abs(r3.median):5.1f} %  (target ≤ 5 %)")
    print(r3.spread_line())
    print(f"  chunk timings kept vs not kept:        {abs(r3b.median):5.1f} %")
    print(f"  {r3b.spread_line()}")
    http.close()
    plain.close()
    timed.close()


class PeakRSS:
    """Samples this process's RSS every 2 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def _memory_child(url: str, items: int, mode: str, payload_bytes: str) -> None:
    """In a fresh process: peak RSS while sending (or only generating) one batch, retry included."""
    client = BatchClient(url, KEY, retry=RetryPolicy(base_delay=0.01, resend="full"))
    client.send(BatchSpec.parse(items="100").batch(0))  # warm imports, pools, connection
    spec = BatchSpec.parse(items=str(items), payload_bytes=payload_bytes, faults="gap=0.01",
                           max_items="100000", seed="9")
    batch = spec.batch(0)
    with PeakRSS() as rss:
        if mode == "client":
            result = client.send(batch)
            assert result.ok, (result.error, result.violations)
            assert len(result.attempts) == 2
            note = f"{result.bytes_sent / 1e6:.1f} MB sent, {result.retry_reasons} → retry"
        else:  # the same lines generated, nothing sent
            size = sum(len(c) for c in batch.chunks()) + sum(len(c) for c in batch.clean_chunks())
            note = f"{size / 1e6:.1f} MB generated"
    print(rss.peak, note)


def memory(url: str, args: argparse.Namespace, report: _rounds.Report) -> None:
    peaks: dict[tuple[str, int], int] = {}
    for mode in ("client", "generator only"):
        for items in (1_000, 100_000):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", url, str(items), mode,
                 "--payload-bytes", args.payload_bytes.split(",")[0]],
                capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
            peaks[mode, items] = int(out[0])
            print(f"  {mode:<15} {items:>7,} items: peak RSS {int(out[0]) / 1e6:6.1f} MB "
                  f"({out[1].strip()})")
    growth = {m: (peaks[m, 100_000] - peaks[m, 1_000]) / 1e6 for m in ("client",
                                                                       "generator only")}
    print(f"RSS growth 1,000 → 100,000 items, retries included: {growth['client']:5.1f} MB "
          "(target ≤ 10 MB)")
    report.add("RSS growth 1,000 → 100,000 items, retries included (MB)", [growth["client"]],
               target=_rounds.at_most(10, "≤ 10 MB"), unit=" MB", fmt=".1f",
               note="measured once (not in rounds)")
    print(f"  of which generating the lines alone (loadkit.generators): "
          f"{growth['generator only']:5.1f} MB; the client's own: "
          f"{growth['client'] - growth['generator only']:5.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--payload-bytes", default="100,256",
                        help="payload sizes to run the throughput part with, comma-separated")
    _rounds.add_arguments(parser, default=40, aliases=("--runs",),
                          per_round="~0.8 s per payload size")
    parser.add_argument("--memory-child", nargs=3, metavar=("URL", "ITEMS", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        url, items, mode = args.memory_child
        _memory_child(url, int(items), mode, args.payload_bytes)
        return
    report = _rounds.Report("client")
    report.info.update(items=args.items, payload_bytes=args.payload_bytes)
    with ReferenceServer(mode="process", max_items=100_000) as server:
        print(f"reference server (process mode) at {server.url}")
        memory(server.url, args, report)
        for payload in args.payload_bytes.split(","):
            throughput(server.url, args, payload.strip(), report)
    report.write(args.json)


if __name__ == "__main__":
    main()
