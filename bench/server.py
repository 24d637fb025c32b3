"""Benchmark: reference server vs. a minimal ASGI app on the same 200,000-item body; memory.

Run: ``.venv/bin/python bench/server.py [--items 200000] [--rounds 100] [--big-mb 1024]
[--json PATH]``.

Both servers run in their own process with the same uvicorn settings
(``loadkit.server.serve.uvicorn_config``); this process is the one client for both and sends
the same pre-encoded body in 64 KiB chunks (chunked transfer encoding) over loopback. The
minimal app only splits lines and parses each with orjson: the practical ceiling. The target
is reference ÷ minimal ≥ 0.7 in items/s.

Rounds (``bench/_rounds.py``): one discarded warm-up round (the full body to each server),
then ``--rounds`` rounds (``--repeat`` is the same option; default 100) of minimal and
reference, alternating (ABBA). Each round's ratio is reference ÷ minimal items/s in that
round; the figure (``median`` on the ratio line) is the median of those ratios, its spread
on the line under it; ``best`` is the ratio of each server's best round. Cost at the default
size (200,000 items, 15 MB) on a 2-core machine: ~0.3 s per round (scaled from 0.03 s at
20,000 items), ~30 s of rounds, ~45 s in all with the large stream.

Then one large stream (``--big-mb``, default 1 GiB, bounded by ``--big-seconds``) of ~4 KiB
items goes to the reference server while its RSS is sampled: memory must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import _rounds
import httpx
import orjson
import psutil

from loadkit import wire
from loadkit.server import ReferenceServer, ServerConfig

CHUNK = 64 * 1024
KEY = wire.DEFAULT_LOCAL_SECRET_KEY
AUTH = {"authorization": f"Bearer {KEY}"}
STREAM_HEADERS = {**AUTH, "content-type": wire.NDJSON_CONTENT_TYPE}


class MinimalApp:
    """The ceiling: read the body, split lines, orjson.loads each, answer the count."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("lifespan.", "")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        loads = orjson.loads
        pending = b""
        count = 0
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
            parts = (pending + message.get("body", b"")).split(b"\n")
            pending = parts.pop()
            for line in parts:
                if line:
                    loads(line)
                    count += 1
        if pending:
            loads(pending)
            count += 1
        body = orjson.dumps({"itemsAccepted": count})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def serve_minimal() -> None:
    """Entry point of the minimal-app subprocess (same glue as ``loadkit serve``)."""
    from loadkit.server.serve import run_foreground  # noqa: PLC0415

    raise SystemExit(run_foreground(ServerConfig(), app=MinimalApp()))


def start_minimal() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-minimal"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.rsplit(" ", 1)[-1].strip()


def make_body(items: int) -> list[bytes]:
    lines = b"".join(
        orjson.dumps({"index": i, "task": "bench-task", "payload": {"key": f"value-{i}", "n": i}})
        + b"\n"
        for i in range(items)
    )
    return [lines[i : i + CHUNK] for i in range(0, len(lines), CHUNK)]


def stream_once(client: httpx.Client, url: str, chunks: list[bytes]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = client.post(url, content=iter(chunks), headers=STREAM_HEADERS)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r.json()


def create(client: httpx.Client, base: str, run_count: int) -> str:
    r = client.post(base + wire.CREATE_PATH, json={"runCount": run_count}, headers=AUTH)
    r.raise_for_status()
    return r.json()["id"]


def big_body(run_count: int, total_bytes: int, deadline: float) -> Iterator[bytes]:
    pad = b"x" * 4000
    sent = 0
    i = 0
    while sent < total_bytes and time.monotonic() < deadline:
        block = b"".join(
            b'{"index":%d,"task":"bench-task","payload":"%s"}\n' % ((i + k) % run_count, pad)
            for k in range(16)
        )
        i += 16
        sent += len(block)
        yield block


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200_000)
    _rounds.add_arguments(ap, default=100, aliases=("--repeat",), per_round="~0.3 s")
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--big-seconds", type=float, default=60.0)
    ap.add_argument("--serve-minimal", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_minimal:
        serve_minimal()
        return

    chunks = make_body(args.items)
    size = sum(map(len, chunks))
    print(f"body: {args.items:,} items, {size / 1e6:.1f} MB, {len(chunks)} chunks of {CHUNK} B")
    big_run_count = 250_000
    ref = ReferenceServer(max_items=max(args.items, big_run_count), request_timeout=600)
    ref.start()
    minimal, minimal_url = start_minimal()
    try:
        with httpx.Client(timeout=600) as client:

            def minimal_round() -> float:
                elapsed, answer = stream_once(client, minimal_url + "/", chunks)
                assert answer["itemsAccepted"] == args.items, answer
                return args.items / elapsed

            def reference_round() -> float:
                batch_id = create(client, ref.url, args.items)
                elapsed, answer = stream_once(client, ref.url + wire.stream_path(batch_id), chunks)
                assert answer["itemsAccepted"] == args.items, answer
                assert answer["sealed"], answer
                return args.items / elapsed

            got = _rounds.interleave({"minimal": minimal_round, "reference": reference_round},
                                     args.rounds)
            min_rates, ref_rates = got["minimal"], got["reference"]
            stats = ref.stats()
            # every round's body, the warm-up round's too
            assert stats["items_enqueued"] == args.items * (len(got) + 1), stats["items_enqueued"]
            report = _rounds.Report("server")
            report.info.update(items=args.items, body_bytes=size)
            fig = report.add("ratio reference/minimal", _rounds.ratios(ref_rates, min_rates),
                             target=_rounds.at_least(0.7, "≥ 0.70"))

            print(got.timing_line())
            print(
                f"minimal ASGI app : best {max(min_rates):>12,.0f} items/s  "
                f"median {statistics.median(min_rates):>12,.0f}"
            )
            print(
                f"reference server : best {max(ref_rates):>12,.0f} items/s  "
                f"median {statistics.median(ref_rates):>12,.0f}"
            )
            print(
                f"ratio reference/minimal: best {max(ref_rates) / max(min_rates):.2f}  "
                f"median {fig.median:.2f}"
                "  (target ≥ 0.70)"
            )
            print(fig.spread_line())

            # memory: one large stream of ~4 KiB items
            proc = psutil.Process(ref.pid)
            rss_before = proc.memory_info().rss
            peak = [rss_before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.1):
                    peak[0] = max(peak[0], proc.memory_info().rss)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            batch_id = create(client, ref.url, big_run_count)
            before = ref.stats()["bytes_read"]
            deadline = time.monotonic() + args.big_seconds
            t0 = time.perf_counter()
            r = client.post(
                ref.url + wire.stream_path(batch_id),
                content=big_body(big_run_count, args.big_mb << 20, deadline),
                headers=STREAM_HEADERS,
            )
            elapsed = time.perf_counter() - t0
            done.set()
            sampler.join()
            rss_after = proc.memory_info().rss
            streamed = ref.stats()["bytes_read"] - before
            print(
                f"large stream: {streamed / 2**20:,.0f} MiB in {elapsed:.1f} s "
                f"({streamed / 2**20 / elapsed:,.0f} MiB/s), answer {r.status_code} "
                f"sealed={r.json().get('sealed')}"
            )
            print(
                f"server RSS: before {rss_before / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} MiB, "
                f"after {rss_after / 2**20:.1f} MiB "
                f"(growth {(rss_after - rss_before) / 2**20:+.1f} MiB)"
            )
            report.info["large_stream"] = {
                "mib": streamed / 2**20, "seconds": elapsed, "status": r.status_code,
                "rss_before_mib": rss_before / 2**20, "rss_peak_mib": peak[0] / 2**20,
                "rss_after_mib": rss_after / 2**20}
            report.write(args.json)
    finally:
        ref.stop()
        minimal.terminate()
        minimal.wait(10)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
