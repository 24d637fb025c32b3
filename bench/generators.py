"""Generator speed: loadkit's byte templates vs orjson over the same items prebuilt as dicts.

Run: ``python bench/generators.py [--batches N]``. Prints items/s and MB/s of
``GeneratedBatch.chunks()`` for 1,000-item batches of 100-byte varied payloads, and in the
same run items/s of two orjson baselines over the same items prebuilt as dicts:

- ``orjson chunks``: ``orjson.dumps`` of each dict, newline-joined into a body: what it
  takes to produce the same NDJSON bytes from dicts (the fair baseline: the ratio uses it);
- ``orjson discard``: ``orjson.dumps`` of each dict with the result thrown away at once, a
  lower bound on encoding work that produces nothing to send (shown for reference).

glibc's default malloc trims the heap so eagerly that keeping many orjson outputs alive
runs ~10x slower than it should (measured here: 0.44 vs 4.6 M items/s). To compare against
a baseline at its best, the script re-runs itself with ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_`` raised (pass ``--default-malloc`` to see the untuned figures).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import orjson

from loadkit.generators import BatchSpec


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--payload-bytes", default="100")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default trimming (slows the orjson baseline)")
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

    t_ours = best_of(5, ours)
    t_chunks = best_of(5, orjson_chunks)
    t_discard = best_of(5, orjson_discard)
    rate = n_items / t_ours
    print(f"items: {n_items:,} in {args.batches} batches, payload {args.payload_bytes} bytes")
    print(f"loadkit chunks   {rate / 1e6:6.2f} M items/s  {nbytes / t_ours / 1e6:7.1f} MB/s")
    print(f"orjson chunks    {n_items / t_chunks / 1e6:6.2f} M items/s  (same NDJSON from dicts)")
    print(f"orjson discard   {n_items / t_discard / 1e6:6.2f} M items/s  (encode, keep nothing)")
    print(f"ratio loadkit / orjson chunks:  {t_chunks / t_ours:5.2f}  (target >= 1.0)")
    print(f"ratio loadkit / orjson discard: {t_discard / t_ours:5.2f}")


if __name__ == "__main__":
    main()
