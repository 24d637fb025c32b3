"""Generator speed: loadkit's byte templates vs orjson over the same items prebuilt as dicts.

Run: ``python bench/generators.py [--batches N] [--rounds N] [--json PATH]``. Prints items/s
and MB/s of ``GeneratedBatch.chunks()`` for 1,000-item batches of 100-byte varied payloads,
and in the same process items/s of two orjson baselines over the same items prebuilt as
dicts:

- ``orjson chunks``: ``orjson.dumps`` of each dict, newline-joined into a body: what it
  takes to produce the same NDJSON bytes from dicts (the fair baseline: the ratio uses it);
- ``orjson discard``: ``orjson.dumps`` of each dict with the result thrown away at once, a
  lower bound on encoding work that produces nothing to send (shown for reference).

Rounds (``bench/_rounds.py``): one discarded warm-up round, then ``--rounds`` rounds (default
100) in which the three variants each encode all ``--batches`` batches once, in alternating
order (ABBA). Each round's ratio is the baseline's time ÷ loadkit's in that round; the
figure is the median of those ratios (target ≥ 1.0), its spread on the line under it; the
items/s shown are the medians over the rounds. Cost at the default size (200 batches of
1,000 items) on a 2-core machine: ~0.16 s per round (scaled from 0.04 s at 50 batches),
~20 s in all with the set-up.

glibc's default malloc trims the heap so eagerly that keeping many orjson outputs alive
runs ~10x slower than it should (measured here: 0.44 vs 4.6 M items/s). To compare against
a baseline at its best, the script re-runs itself with ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_`` raised (pass ``--default-malloc`` to see the untuned figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import _rounds
import orjson

from loadkit.generators import BatchSpec


def timed(fn: Callable[[], None]) -> Callable[[], float]:
    """``fn`` as a variant of a round: it returns the seconds the call took."""
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--payload-bytes", default="100")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default trimming (slows the orjson baseline)")
    _rounds.add_arguments(parser, default=100, per_round="~0.16 s")
    args = parser.parse_args()
    if not args.default_malloc and "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "268435456", "MALLOC_TOP_PAD_": "268435456"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    spec = BatchSpec.parse(items=str(args.items), payload_bytes=args.payload_bytes)
    n_items = args.batches * args.items
    nbytes = sum(len(c) for seq in range(args.batches) for c in spec.batch(seq).chunks())
    prebuilt = [[orjson.loads(line) for line in spec.batch(seq).lines()]
                for seq in range(args.batches)]

    def ours() -> None:
        for seq in range(args.batches):
            for _ in spec.batch(seq).chunks():
                pass

    def orjson_chunks() -> None:
        for items in prebuilt:
            b"\n".join(map(orjson.dumps, items))

    def orjson_discard() -> None:
        for items in prebuilt:
            for item in items:
                orjson.dumps(item)

    got = _rounds.interleave({"loadkit chunks": timed(ours), "orjson chunks": timed(orjson_chunks),
                              "orjson discard": timed(orjson_discard)}, args.rounds)
    med = {name: statistics.median(times) for name, times in got.values.items()}
    report = _rounds.Report("generators")
    report.info.update(items=n_items, batches=args.batches, payload_bytes=args.payload_bytes)
    vs_chunks = report.add("ratio loadkit / orjson chunks",
                           _rounds.ratios(got["orjson chunks"], got["loadkit chunks"]),
                           target=_rounds.at_least(1.0, ">= 1.0"))
    vs_discard = report.add("ratio loadkit / orjson discard",
                            _rounds.ratios(got["orjson discard"], got["loadkit chunks"]))
    t_ours = med["loadkit chunks"]
    print(f"items: {n_items:,} in {args.batches} batches, payload {args.payload_bytes} bytes")
    print(got.timing_line() + "; items/s: medians over the rounds")
    print(f"loadkit chunks   {n_items / t_ours / 1e6:6.2f} M items/s  "
          f"{nbytes / t_ours / 1e6:7.1f} MB/s")
    print(f"orjson chunks    {n_items / med['orjson chunks'] / 1e6:6.2f} M items/s  "
          "(same NDJSON from dicts)")
    print(f"orjson discard   {n_items / med['orjson discard'] / 1e6:6.2f} M items/s  "
          "(encode, keep nothing)")
    print(f"ratio loadkit / orjson chunks:  {vs_chunks.median:5.2f}  (target >= 1.0)")
    print(vs_chunks.spread_line())
    print(f"ratio loadkit / orjson discard: {vs_discard.median:5.2f}")
    print(vs_discard.spread_line())
    report.write(args.json)


if __name__ == "__main__":
    main()
