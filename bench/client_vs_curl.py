"""loadkit's client vs curl posting the same bytes: items/s of one large batch's stream.

Run: ``python bench/client_vs_curl.py [--items 200000] [--payload-bytes 100] [--rounds 50]
[--experiments] [--json PATH]``.

One reference server (process mode, ``max_items`` raised to the batch size). The batch
(``--shape flat`` by default) is encoded once to a file; each run creates a fresh batch,
then streams it:

- **loadkit**: ``BatchClient.send`` (lines generated on the fly, every chunk write timed
  through the metered socket); items/s = run_count ÷ ``stream_ms``;
- **curl**: ``curl --data-binary @file -H 'Content-Type: application/x-ndjson'
  -H 'Authorization: Bearer KEY'`` to the batch's stream URL; items/s = run_count ÷ curl's
  ``time_total`` (connect → answer read; curl loads the file before the transfer starts).
  Without curl on the PATH, a raw socket posting the file's bytes (``sendall``, one
  Content-Length request) is the baseline instead.

Rounds (``bench/_rounds.py``): one discarded warm-up round of both, then ``--rounds`` rounds
(``--runs`` is the same option; default 50; no more rounds start after ``--max-seconds``)
of loadkit and the baseline, alternating (ABBA). Each round's ratio is loadkit ÷ baseline
items/s in that round; the figure is the median of those ratios (target ≥ 0.9), its spread
on the line under it (``--json`` keeps every round's ratio). Every answer is checked
(200, sealed, itemsAccepted = run_count). CPU seconds of the client and of the server
process are shown per variant (medians): on a 2-core machine the client and the server
compete. Cost at the default size (200,000 items, 30 MB) on a 2-core machine: ~1.2 s per
round (scaled from 0.12 s at 20,000 items), ~1 min in all.

``--experiments`` adds what-if variants (local copies and monkeypatches in this file, loadkit
itself is untouched): other chunk sizes, loadkit's chunks pre-generated (generation cost),
the same chunks written straight to a socket (httpx/httpcore's cost), loadkit without the
metered transport (plain ``httpx.HTTPTransport``), and a raw socket sending the file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator

import _rounds
import httpx
import psutil

from loadkit import wire
from loadkit.client import BatchClient, RetryPolicy
from loadkit.generators import BatchSpec
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
AUTH = {"authorization": f"Bearer {KEY}"}


class Bench:
    def __init__(self, server: ReferenceServer, args: argparse.Namespace) -> None:
        assert server.url is not None
        self.url = server.url
        self.args = args
        self.server_proc = psutil.Process(server._proc.pid) if server._proc else None
        self.spec = BatchSpec.parse(items=str(args.items), payload_bytes=str(args.payload_bytes),
                                    shape=args.shape, max_items=str(args.items))
        self.batch = self.spec.batch(0)
        self.n = self.batch.run_count
        self.http = httpx.Client(base_url=self.url, timeout=300)
        self.tmp = tempfile.TemporaryDirectory(prefix="loadkit-bench-")
        self.body_path = os.path.join(self.tmp.name, "body.ndjson")
        self.answer_path = os.path.join(self.tmp.name, "answer.json")
        with open(self.body_path, "wb") as f:
            for chunk in self.batch.chunks():
                f.write(chunk)
        self.size = os.path.getsize(self.body_path)
        self.curl = shutil.which("curl")
        self.clients: dict[int, BatchClient] = {}

    def close(self) -> None:
        self.http.close()
        for c in self.clients.values():
            c.close()
        self.tmp.cleanup()

    # -- helpers ----------------------------------------------------------------------------

    def create(self) -> str:
        r = self.http.post(wire.CREATE_PATH, json={"runCount": self.n}, headers=AUTH)
        r.raise_for_status()
        return r.json()["id"]

    def check(self, status: int, answer: dict) -> None:
        assert status == 200, (status, answer)
        assert answer["sealed"], answer
        assert answer["itemsAccepted"] == self.n, answer

    def server_cpu(self) -> float:
        if self.server_proc is None:
            return float("nan")
        t = self.server_proc.cpu_times()
        return t.user + t.system

    def client(self, chunk_bytes: int | None = None) -> BatchClient:
        key = chunk_bytes or 0
        if key not in self.clients:
            self.clients[key] = BatchClient(self.url, KEY, retry=RetryPolicy.none(),
                                            chunk_bytes=chunk_bytes)
            self.clients[key].send(BatchSpec.parse(items="100").batch(0))  # warm the connection
        return self.clients[key]

    # -- variants: each returns (seconds of the stream, client CPU seconds) ------------------

    def loadkit(self, chunk_bytes: int | None = None) -> tuple[float, float]:
        client = self.client(chunk_bytes)
        batch = self.spec.batch(0)  # the same bytes as the file
        c0 = time.process_time()
        result = client.send(batch)
        cpu = time.process_time() - c0
        assert result.ok, (result.error, result.violations)
        assert result.sealed
        assert len(result.attempts) == 1
        assert result.items_accepted == self.n
        return result.stream_ms / 1000.0, cpu

    def curl_post(self, extra: Iterable[str] = ()) -> tuple[float, float]:
        assert self.curl is not None
        batch_id = self.create()
        argv = [self.curl, "-sS", "-o", self.answer_path, "-w", "%{http_code} %{time_total}",
                "--data-binary", f"@{self.body_path}",
                "-H", f"Content-Type: {wire.NDJSON_CONTENT_TYPE}",
                "-H", f"Authorization: Bearer {KEY}", *extra,
                self.url + wire.stream_path(batch_id)]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        status, seconds = out.stdout.split()
        with open(self.answer_path, "rb") as f:
            self.check(int(status), json.load(f))
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return float(seconds), cpu

    def raw_socket(self) -> tuple[float, float]:
        """The file's bytes in one Content-Length request over a plain blocking socket."""
        batch_id = self.create()
        with open(self.body_path, "rb") as f:
            body = f.read()
        host, port = self.url.removeprefix("http://").split(":")
        head = (f"POST {wire.stream_path(batch_id)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Type: {wire.NDJSON_CONTENT_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        c0 = time.process_time()
        t0 = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=120) as s:
            s.sendall(head)
            s.sendall(body)
            answer = _read_http_answer(s)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        self.check(*answer)
        return elapsed, cpu

    def chunks_to_socket(self, chunks: Callable[[], Iterator[bytes]]) -> tuple[float, float]:
        """loadkit's coalesced chunks written with chunked framing straight to a socket: no
        httpx/httpcore, no timing (what the client would cost without its HTTP stack)."""
        batch_id = self.create()
        host, port = self.url.removeprefix("http://").split(":")
        head = (f"POST {wire.stream_path(batch_id)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Type: {wire.NDJSON_CONTENT_TYPE}\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        s = socket.create_connection((host, int(port)), timeout=120)
        try:
            c0 = time.process_time()
            t0 = time.perf_counter()
            s.sendall(head)
            send = s.sendall
            for chunk in chunks():
                send(b"%x\r\n" % len(chunk))
                send(chunk)
                send(b"\r\n")
            send(b"0\r\n\r\n")
            answer = _read_http_answer(s)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - c0
        finally:
            s.close()
        self.check(*answer)
        return elapsed, cpu

    def httpx_chunks(self, chunks: Callable[[], Iterator[bytes]]) -> tuple[float, float]:
        """The chunks through a plain httpx client (default transport), no timing."""
        batch_id = self.create()
        c0 = time.process_time()
        t0 = time.perf_counter()
        r = self.http.post(wire.stream_path(batch_id), content=chunks(),
                           headers={**AUTH, "content-type": wire.NDJSON_CONTENT_TYPE})
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        self.check(r.status_code, r.json())
        return elapsed, cpu


def _read_http_answer(s: socket.socket) -> tuple[int, dict]:
    data = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        data += part
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length:")), None)
            if length is not None and len(rest) >= length:
                break
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest)


def _busy() -> float:
    """CPU seconds the whole machine has been busy (every process, every core)."""
    t = psutil.cpu_times()
    return (sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
            - getattr(t, "guest_nice", 0.0))


def run(bench: Bench, variants: dict[str, Callable[[], tuple[float, float]]],
        rounds: int) -> dict[str, dict[str, list[float]]]:
    """The variants in ``rounds`` alternating rounds (after one warm-up round); per variant,
    per round: items/s and the CPU seconds of the client, the server and everything else."""

    def measured(fn: Callable[[], tuple[float, float]]) -> Callable[[], dict[str, float]]:
        def one() -> dict[str, float]:
            s0, b0 = bench.server_cpu(), _busy()
            seconds, cpu = fn()
            server = bench.server_cpu() - s0
            return {"ips": bench.n / seconds, "cpu": cpu, "server_cpu": server,
                    "other_cpu": _busy() - b0 - server - cpu}
        return one

    got = _rounds.interleave({name: measured(fn) for name, fn in variants.items()}, rounds,
                             max_seconds=bench.args.max_seconds)
    print(f"  {got.timing_line()}")
    return {name: {key: [r[key] for r in results]
                   for key in ("ips", "cpu", "server_cpu", "other_cpu")}
            for name, results in got.values.items()}


def show(out: dict[str, dict[str, list[float]]], n: int) -> None:
    print(f"  {'variant':<36} {'median M items/s':>17} {'min–max':>15} "
          f"{'client CPU s':>13} {'server CPU s':>13} {'others CPU s':>13}")
    for name, m in out.items():
        ips = m["ips"]
        print(f"  {name:<36} {statistics.median(ips) / 1e6:17.3f} "
              f"{min(ips) / 1e6:7.3f}–{max(ips) / 1e6:<7.3f} "
              f"{statistics.median(m['cpu']):13.3f} {statistics.median(m['server_cpu']):13.3f} "
              f"{statistics.median(m['other_cpu']):13.3f}")


def busy_note(out: dict[str, dict[str, list[float]]]) -> None:
    """Say when other processes used the CPUs during the rounds (the figures are then not
    the client's: a client needing more CPU loses more when the 2 cores are shared)."""
    other = max(statistics.median(m["other_cpu"]) for m in out.values())
    if other > 0.05:
        print(f"  NOTE: other processes used {other:.2f} CPU s per variant and round (median): "
              "the machine was busy, the ratios are not reliable; rerun on an idle machine")


def ratio_line(out: dict[str, dict[str, list[float]]], ours: str, base: str, label: str,
               report: _rounds.Report) -> None:
    fig = report.add(label, _rounds.ratios(out[ours]["ips"], out[base]["ips"]),
                     target=_rounds.at_least(0.9, "≥ 0.9"))
    print(f"{label}: {fig.median:5.2f}  (target ≥ 0.9)")
    print(fig.spread_line())  # (the per-round ratios, listed here before, are in --json's)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--shape", default="flat")
    _rounds.add_arguments(parser, default=50, aliases=("--runs",), per_round="~1.2 s")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop adding rounds after this long")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the what-if variants (chunk sizes, no httpx, …)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the server to the last CPU and this process (and curl) to "
                             "the others (is contention for the cores the gap?)")
    parser.add_argument("--no-curl", action="store_true",
                        help="use the raw-socket baseline even when curl is installed")
    args = parser.parse_args()

    with ReferenceServer(mode="process", max_items=args.items) as server:
        bench = Bench(server, args)
        if args.pin and bench.server_proc is not None:
            cpus = sorted(os.sched_getaffinity(0))
            bench.server_proc.cpu_affinity(cpus[-1:])
            os.sched_setaffinity(0, cpus[:-1] or cpus)
        if args.no_curl:
            bench.curl = None
        try:
            base = "curl --data-binary @file" if bench.curl else "raw socket, file's bytes"
            print(f"reference server (process mode) at {server.url}; {os.cpu_count()} CPUs")
            print(f"batch: {bench.n:,} items, {args.payload_bytes} B {args.shape} payloads, "
                  f"{bench.size / 1e6:.1f} MB NDJSON; chunks of "
                  f"{bench.spec.chunk_bytes // 1024} KiB; {args.rounds} alternated rounds")
            print(f"baseline: {base}" + ("" if bench.curl else " (curl not found)"))
            variants: dict[str, Callable[[], tuple[float, float]]] = {
                "loadkit BatchClient.send": bench.loadkit,
                base: bench.curl_post if bench.curl else bench.raw_socket,
            }
            report = _rounds.Report("client_vs_curl")
            report.info.update(items=bench.n, body_bytes=bench.size, baseline=base)
            out = run(bench, variants, args.rounds)
            show(out, bench.n)
            ratio_line(out, "loadkit BatchClient.send", base, f"ratio loadkit ÷ {base}", report)
            busy_note(out)
            if args.experiments:
                experiments(bench, base, report)
            report.write(args.json)
        finally:
            bench.close()


def experiments(bench: Bench, base: str, report: _rounds.Report) -> None:
    """What-if variants: which part of the client's path costs what."""
    pre = list(bench.spec.batch(0).chunks())  # loadkit's 64 KiB chunks, generated once
    big = [b"".join(pre[i:i + 16]) for i in range(0, len(pre), 16)]  # ~1 MiB chunks

    def plain_transport() -> tuple[float, float]:
        # loadkit's client on httpx's own transport (no metered, non-blocking writes)
        if -1 not in bench.clients:
            c = BatchClient(bench.url, KEY, retry=RetryPolicy.none(),
                            transport=httpx.HTTPTransport(retries=0))
            c.send(BatchSpec.parse(items="100").batch(0))
            bench.clients[-1] = c
        result = bench.clients[-1].send(bench.spec.batch(0))
        assert result.sealed
        assert result.items_accepted == bench.n
        return result.stream_ms / 1000.0, float("nan")

    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "loadkit BatchClient.send": bench.loadkit,
        "loadkit chunk_bytes=256 KiB": lambda: bench.loadkit(256 * 1024),
        "loadkit chunk_bytes=1 MiB": lambda: bench.loadkit(1024 * 1024),
        "loadkit on httpx.HTTPTransport": plain_transport,
        "httpx, pre-generated 64 KiB chunks": lambda: bench.httpx_chunks(lambda: iter(pre)),
        "httpx, generated 64 KiB chunks": lambda: bench.httpx_chunks(
            lambda: bench.spec.batch(0).chunks()),
        "socket, generated 64 KiB chunks": lambda: bench.chunks_to_socket(
            lambda: bench.spec.batch(0).chunks()),
        "socket, pre-generated 64 KiB chunks": lambda: bench.chunks_to_socket(lambda: iter(pre)),
        "socket, pre-generated 1 MiB chunks": lambda: bench.chunks_to_socket(lambda: iter(big)),
        "raw socket, file's bytes": bench.raw_socket,
    }
    if bench.curl:
        variants[base] = bench.curl_post
        variants["curl, no Expect: 100-continue"] = lambda: bench.curl_post(["-H", "Expect:"])
    print(f"\nexperiments ({bench.args.rounds} alternated rounds)")
    out = run(bench, variants, bench.args.rounds)
    show(out, bench.n)
    busy_note(out)
    ref = base if base in out else "raw socket, file's bytes"
    for name in out:
        if name != ref:  # the median of the rounds' ratios, as the figure's
            fig = report.add(f"experiment: {name} ÷ {ref}",
                             _rounds.ratios(out[name]["ips"], out[ref]["ips"]))
            print(f"  {name:<36} ÷ {ref}: {fig.median:5.2f}  ({fig.spread_line()})")


if __name__ == "__main__":
    sys.exit(main())
