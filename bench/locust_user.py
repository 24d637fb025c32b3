"""Locust user cost: client CPU seconds per million items, loadkit's user vs a FastHttpUser.

Run: ``python bench/locust_user.py [--seconds 15] [--users 4] [--items 20000] [--rounds 3]
[--experiments] [--loadkit-args '--chunk-bytes 262144'] [--json PATH]``.

One reference server (its own process, ``max_items`` raised to the batch size) serves two
headless locust runs of this file, one after the other, with the same users, batch size and
duration:

- ``LoadkitBench``: :class:`loadkit.locust_users.BatchUser` (generates every batch from its
  seed, streams it in ~64 KiB chunks through ``BatchClient`` timing every chunk write, checks
  every answer, writes one record per batch);
- ``FastBench``: locust's ``FastHttpUser`` posting the same bytes pre-encoded once (the
  create, then the whole NDJSON body in one request), reading only ``itemsAccepted``.

Each locust process's own CPU time (user + system, ``time.process_time()`` from test start
to test stop, so interpreter start-up and imports are left out) is divided by the items the
server accepted from it. loadkit's user also *generates* every batch, which FastHttpUser does
not; that cost is measured apart (this process, no locust: ``chunks()`` of the same batches,
after one warm-up batch: the payload pools are built once per process, ~30 ms, which a run
amortizes; without the warm-up the figure was inflated by 40-150 %).
Target: loadkit ÷ (FastHttpUser + generation) ≤ 1.3.

Rounds (``bench/_rounds.py``): one discarded warm-up round (each locust run
min(``--seconds``, 5) s), then ``--rounds`` rounds (``--runs`` is the same option; default 3)
in which each user runs once and the generation is measured once, in alternating order
(ABBA). Each round's ratio pairs that round's figures; each ratio printed is the median of
the rounds' ratios, its spread on the line under it; the CPU s per M items shown are the
medians over the rounds. Cost at the default size on a 2-core machine: ~32 s per round (two
15 s locust runs, ~1 s of start-up and stop each, and the generation; measured: 5.9 s per
round with ``--seconds 2``), ~12 s for the warm-up round: ~1.9 min in all (a round costs
~2 x ``--seconds`` + 2 s).

``--experiments`` adds loadkit users changed by monkeypatches in this file (loadkit itself is
untouched), to tell where loadkit's CPU goes: ``LoadkitPregen`` (every batch's chunks
generated once and replayed: the client's own cost without generation),
``LoadkitNoBook`` (no record, no locust events, no record writing) and ``LoadkitBigChunks``
(``--chunk-bytes 262144``); and two users with no loadkit client code, which bound what any
client could reach: ``HttpxFloor`` (a plain ``httpx.Client`` posting the pre-encoded chunks:
the floor of a client built on httpx; its ratio is printed with the generation added, as
loadkit's is) and ``FastChunked`` (FastBench sending the same chunks with chunked transfer
coding).

This file is also the locustfile both runs use (the driver re-runs it under ``locust``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

if "locust" in sys.modules or os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    # --- the locustfile side ---------------------------------------------------------------
    import time

    from locust import User, events, task
    from locust.contrib.fasthttp import FastHttpUser

    from loadkit import wire
    from loadkit.locust_users import BatchUser, _given
    from loadkit.options import parse_options

    ITEMS = [0]

    class LoadkitBench(BatchUser):
        """loadkit's user as it is."""

    class LoadkitBigChunks(BatchUser):
        """loadkit's user as it is (the driver passes ``--chunk-bytes 262144``)."""

    class LoadkitPregen(BatchUser):
        """loadkit's user whose batches replay chunks generated once (no generation cost)."""

        def on_start(self) -> None:
            super().on_start()
            from loadkit.generators import GeneratedBatch  # noqa: PLC0415

            if not getattr(GeneratedBatch, "_bench_cached", False):
                original = GeneratedBatch.chunks
                cache: dict[tuple[int, int | None], list[bytes]] = {}

                def chunks(self, chunk_bytes=None):
                    key = (self.run_count, chunk_bytes)
                    if key not in cache:
                        cache[key] = list(original(self, chunk_bytes))
                    return iter(cache[key])

                GeneratedBatch.chunks = chunks
                GeneratedBatch._bench_cached = True

    def _send_no_bookkeeping(user: BatchUser) -> None:
        from loadkit.locust_users import _run  # noqa: PLC0415

        result = user.batch_client.send(_run.options.spec.batch(_run.next_seq()))
        ITEMS[0] += result.items_accepted

    class LoadkitNoBook(User):
        """loadkit's user without its per-batch bookkeeping (record, events, writing): a
        plain User with BatchUser's start and stop (a BatchUser subclass would inherit its
        task too: locust gathers the tasks of the base classes)."""

        wait_time = BatchUser.wait_time
        on_start = BatchUser.on_start
        on_stop = BatchUser.on_stop
        tasks = [_send_no_bookkeeping]  # noqa: RUF012

    class PreEncoded:
        """One batch of the run's spec, encoded once: its chunks, the whole body, the create
        request's JSON and the headers, for the users that post pre-encoded bytes."""

        def __init__(self, environment) -> None:
            batch = parse_options(**_given(environment)).spec.batch(0)
            self.chunks = list(batch.chunks())
            self.body = b"".join(self.chunks)
            self.create = {"runCount": batch.run_count,
                           "taskIdentifiers": list(batch.task_identifiers)}
            key = os.environ.get("TRIGGER_SECRET_KEY", wire.DEFAULT_LOCAL_SECRET_KEY)
            self.auth = {"Authorization": f"Bearer {key}"}
            self.stream_headers = {**self.auth, "Content-Type": wire.NDJSON_CONTENT_TYPE}

    class HttpxFloor(User):
        """The same pre-encoded chunks, posted by a plain ``httpx.Client`` (no loadkit code):
        the floor of any client built on httpx."""

        def on_start(self) -> None:
            import httpx  # noqa: PLC0415

            self.pre = PreEncoded(self.environment)
            self.http = httpx.Client(base_url=self.host, headers=self.pre.auth)

        @task
        def send(self) -> None:
            pre = self.pre
            batch_id = self.http.post(wire.create_path(), json=pre.create).json()["id"]
            r = self.http.post(wire.stream_path(batch_id), content=iter(pre.chunks),
                               headers=pre.stream_headers)
            ITEMS[0] += int(r.json()["itemsAccepted"])

    class FastBench(FastHttpUser):
        """The same bytes, pre-encoded once, posted by locust's fastest HTTP user."""

        def on_start(self) -> None:
            self.pre = PreEncoded(self.environment)

        def body(self) -> bytes | Iterator[bytes]:
            return self.pre.body

        @task
        def send(self) -> None:
            pre = self.pre
            with self.client.post(wire.create_path(), json=pre.create, headers=pre.auth,
                                  name="create", catch_response=True) as r:
                batch_id = r.json()["id"]
            with self.client.post(wire.stream_path(batch_id), data=self.body(),
                                  headers=pre.stream_headers, name="stream",
                                  catch_response=True) as r:
                ITEMS[0] += int(r.json()["itemsAccepted"])

    class FastChunked(FastBench):
        """FastBench, its body sent as the same ~64 KiB chunks (chunked transfer coding)."""

        def body(self) -> bytes | Iterator[bytes]:
            return iter(self.pre.chunks)

    CPU = [0.0]

    @events.test_start.add_listener
    def _cpu_start(environment, **_kw) -> None:
        CPU[0] = time.process_time()

    @events.test_stop.add_listener
    def _cpu_stop(environment, **_kw) -> None:
        CPU[0] = time.process_time() - CPU[0]

    @events.quitting.add_listener
    def _print_figures(environment, **_kw) -> None:
        print(f"BENCH_CPU {CPU[0]}", flush=True)
        print(f"BENCH_ITEMS {ITEMS[0]}", flush=True)


def wire_key() -> str:
    from loadkit import wire  # noqa: PLC0415

    return wire.DEFAULT_LOCAL_SECRET_KEY


WARMUP_S = 5
"""Seconds of each locust run in the warm-up round (at most ``--seconds``)."""


def _measure(user_class: str, url: str, args: argparse.Namespace, results: Path,
             seconds: int) -> dict:
    """Run one locust process for ``seconds``; its CPU seconds, items accepted and CPU
    seconds per million items."""
    results = Path(tempfile.mkdtemp(dir=results))  # one results dir per run (every user
    # class loads loadkit's plugin, so every run leaves a run directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TRIGGER_"))}
    env.update(LOADKIT_BENCH_LOCUSTFILE="1", TRIGGER_SECRET_KEY=wire_key())
    argv = [
        str(Path(sys.executable).with_name("locust")), "-f", __file__, user_class,
        "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{seconds}s",
        "--host", url, "--items", str(args.items), "--max-items", str(args.items),
        "--payload-bytes", str(args.payload_bytes), "--results-dir", str(results),
        "--only-summary", "--loglevel", "WARNING",
    ]
    if user_class.startswith("Loadkit"):
        argv += args.loadkit_args.split()
    if user_class == "LoadkitBigChunks":
        argv += ["--chunk-bytes", "262144"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        sys.exit(f"{user_class} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = float(next(ln.split()[1] for ln in proc.stdout.splitlines()
                     if ln.startswith("BENCH_CPU")))
    if user_class in ("FastBench", "LoadkitNoBook", "HttpxFloor", "FastChunked"):
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_ITEMS")]
        items = int(lines[-1].split()[1]) if lines else 0
    else:
        from loadkit.records import read_records  # noqa: PLC0415

        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        table = read_records(run_dir)
        items = sum(table.column("items_accepted").to_pylist())
    shutil.rmtree(results, ignore_errors=True)
    per_m = cpu / (items / 1e6) if items else float("nan")
    return {"cpu": cpu, "items": items, "per_m": per_m, "seconds": seconds}


def main() -> None:
    import _rounds  # noqa: PLC0415 - the driver's only (this file is a locustfile too)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--payload-bytes", type=int, default=64)
    _rounds.add_arguments(parser, default=3, aliases=("--runs",),
                          per_round="~32 s (2 x --seconds + 2 s)")
    parser.add_argument("--loadkit-args", default="",
                        help="extra run options for the loadkit users, e.g. '--chunk-bytes 262144'")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the monkeypatched loadkit users (see the docstring)")
    args = parser.parse_args()

    from loadkit.server import ReferenceServer  # noqa: PLC0415

    names = ["LoadkitBench", "FastBench"]
    if args.experiments:
        names += ["LoadkitPregen", "LoadkitNoBook", "LoadkitBigChunks", "HttpxFloor",
                  "FastChunked"]
    print(f"{args.users} users, {args.items:,}-item batches of {args.payload_bytes}-byte "
          f"payloads, {args.seconds} s each, one reference server (own process); "
          f"{args.rounds} alternated rounds" + (f"; loadkit args {args.loadkit_args!r}"
                                                 if args.loadkit_args else ""))
    with ReferenceServer(max_items=args.items) as server, \
            tempfile.TemporaryDirectory() as tmp:

        def user(name: str, seconds: int) -> Callable[[], dict]:
            return lambda: _measure(name, server.url, args, Path(tmp), seconds)

        def generation() -> dict:
            return {"per_m": _generation_cpu(args)}

        def progress(i: int, got: dict[str, dict]) -> None:
            for name in names:
                m = got[name]
                print(f"round {i + 1} {name:16s} items {m['items']:>12,}  "
                      f"{m['items'] / m['seconds'] / 1e6:6.2f} M items/s  client CPU "
                      f"{m['cpu']:6.2f} s  = {m['per_m']:6.3f} CPU s per M items", flush=True)
            print(f"round {i + 1} generation alone (this process, no locust): "
                  f"{got['generation']['per_m']:.3f} CPU s per M items", flush=True)

        variants = {name: user(name, args.seconds) for name in names}
        variants["generation"] = generation
        warm = {name: user(name, min(args.seconds, WARMUP_S)) for name in names}
        warm["generation"] = generation
        got = _rounds.interleave(variants, args.rounds, warmup=warm, after_round=progress)
    figures = {name: [m["per_m"] for m in got[name]] for name in variants}
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(got.timing_line())
    print(f"\nmedians of {len(got)} rounds, CPU s per M items: " + ", ".join(
        f"{k} {v:.3f}" for k, v in med.items()))
    report = _rounds.Report("locust_user")
    report.info.update(users=args.users, items=args.items, seconds=args.seconds,
                       cpu_s_per_m_items=med)
    fast = report.add("ratio loadkit / FastHttpUser (CPU per item)",
                      _rounds.ratios(figures["LoadkitBench"], figures["FastBench"]))
    print(f"ratio loadkit / FastHttpUser (CPU per item): {fast.median:.2f}")
    print(fast.spread_line())
    with_gen = report.add(
        "ratio loadkit / (FastHttpUser + generation)",
        _rounds.ratios(figures["LoadkitBench"],
                       [fb + g for fb, g in zip(figures["FastBench"], figures["generation"],
                                                strict=True)]),
        target=_rounds.at_most(1.3, "<= 1.3"))
    print(f"ratio loadkit / (FastHttpUser + generation): {with_gen.median:.2f}  "
          f"(medians {med['LoadkitBench']:.3f} / ({med['FastBench']:.3f} + "
          f"{med['generation']:.3f}); target <= 1.3)")
    print(with_gen.spread_line())
    if "LoadkitPregen" in med:
        in_situ = med["LoadkitBench"] - med["LoadkitPregen"]
        print(f"generation in situ (LoadkitBench - LoadkitPregen): {in_situ:.3f} CPU s per M "
              f"items; ratio with it: {med['LoadkitBench'] / (med['FastBench'] + in_situ):.2f}")
    for name in names[2:]:
        print(f"  {name:16s} {med[name]:.3f} CPU s per M items = "
              f"{med[name] / med['LoadkitBench'] * 100:5.1f} % of LoadkitBench; "
              f"its ratio to (FastHttpUser + generation): "
              f"{med[name] / (med['FastBench'] + med['generation']):.2f}")
    if "HttpxFloor" in med:
        floor = report.add(
            "httpx floor: (HttpxFloor + generation) / (FastHttpUser + generation)",
            _rounds.ratios([h + g for h, g in zip(figures["HttpxFloor"], figures["generation"],
                                                  strict=True)],
                           [fb + g for fb, g in zip(figures["FastBench"], figures["generation"],
                                                    strict=True)]))
        print(f"httpx floor: (HttpxFloor + generation) / (FastHttpUser + generation): "
              f"{floor.median:.2f}: the best ratio a client that posts through httpx can reach")
        print(floor.spread_line())
        print(f"loadkit's own cost above the httpx floor (LoadkitPregen - HttpxFloor): "
              f"{med['LoadkitPregen'] - med['HttpxFloor']:.3f} CPU s per M items; "
              f"chunking's cost under geventhttpclient (FastChunked - FastBench): "
              f"{med['FastChunked'] - med['FastBench']:.3f}")
    report.write(args.json)


def _generation_cpu(args: argparse.Namespace) -> float:
    import time  # noqa: PLC0415

    from loadkit.generators import BatchSpec  # noqa: PLC0415

    spec = BatchSpec.parse(items=args.items, max_items=args.items,
                           payload_bytes=args.payload_bytes)
    for _chunk in spec.batch(10**6).chunks():  # warm-up: the payload pools are built once
        pass  # per process (on the first batch), which a run's many batches amortize
    start = time.process_time()
    batches = max(1, 400_000 // args.items)
    for seq in range(batches):
        for _chunk in spec.batch(seq).chunks():
            pass
    return (time.process_time() - start) / (batches * args.items / 1e6)


if __name__ == "__main__" and not os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    main()
