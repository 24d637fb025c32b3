"""Locust user cost: client CPU seconds per million items, loadkit's user vs a FastHttpUser.

Run: ``python bench/locust_user.py [--seconds 15] [--users 4] [--items 20000]``.

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
server accepted from it. Target: loadkit ÷ FastHttpUser ≤ 1.3.

This file is also the locustfile both runs use (the driver re-runs it under ``locust``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if "locust" in sys.modules or os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    # --- the locustfile side ---------------------------------------------------------------
    import time

    from locust import events, task
    from locust.contrib.fasthttp import FastHttpUser

    from loadkit import wire
    from loadkit.locust_users import BatchUser, _given
    from loadkit.options import parse_options

    ITEMS = [0]

    class LoadkitBench(BatchUser):
        """loadkit's user as it is."""

    class FastBench(FastHttpUser):
        """The same bytes, pre-encoded once, posted by locust's fastest HTTP user."""

        def on_start(self) -> None:
            opts = parse_options(**_given(self.environment))
            batch = opts.spec.batch(0)
            self.body = b"".join(batch.chunks())
            self.create = {"runCount": batch.run_count,
                           "taskIdentifiers": list(batch.task_identifiers)}
            key = os.environ.get("TRIGGER_SECRET_KEY", wire.DEFAULT_LOCAL_SECRET_KEY)
            self.auth = {"Authorization": f"Bearer {key}"}
            self.stream_headers = {**self.auth, "Content-Type": wire.NDJSON_CONTENT_TYPE}

        @task
        def send(self) -> None:
            with self.client.post(wire.create_path(), json=self.create, headers=self.auth,
                                  name="create", catch_response=True) as r:
                batch_id = r.json()["id"]
            with self.client.post(wire.stream_path(batch_id), data=self.body,
                                  headers=self.stream_headers, name="stream",
                                  catch_response=True) as r:
                ITEMS[0] += int(r.json()["itemsAccepted"])

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


def _measure(user_class: str, url: str, args: argparse.Namespace, results: Path) -> dict:
    """Run one locust process and return its CPU seconds and items accepted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TRIGGER_"))}
    env.update(LOADKIT_BENCH_LOCUSTFILE="1", TRIGGER_SECRET_KEY=wire_key())
    argv = [
        str(Path(sys.executable).with_name("locust")), "-f", __file__, user_class,
        "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s",
        "--host", url, "--items", str(args.items), "--max-items", str(args.items),
        "--payload-bytes", str(args.payload_bytes), "--results-dir", str(results),
        "--only-summary", "--loglevel", "WARNING",
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        sys.exit(f"{user_class} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = float(next(ln.split()[1] for ln in proc.stdout.splitlines()
                     if ln.startswith("BENCH_CPU")))
    if user_class == "FastBench":
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_ITEMS")]
        items = int(lines[-1].split()[1]) if lines else 0
    else:
        from loadkit.records import read_records  # noqa: PLC0415

        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        table = read_records(run_dir)
        items = sum(table.column("items_accepted").to_pylist())
        for child in run_dir.iterdir():
            child.unlink()
        run_dir.rmdir()
    return {"cpu": cpu, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--payload-bytes", type=int, default=64)
    args = parser.parse_args()

    from loadkit.server import ReferenceServer  # noqa: PLC0415

    print(f"{args.users} users, {args.items:,}-item batches of {args.payload_bytes}-byte "
          f"payloads, {args.seconds} s each, one reference server (own process)")
    figures = {}
    with ReferenceServer(max_items=args.items) as server, \
            tempfile.TemporaryDirectory() as tmp:
        for name in ("LoadkitBench", "FastBench"):
            m = _measure(name, server.url, args, Path(tmp))
            per_m = m["cpu"] / (m["items"] / 1e6) if m["items"] else float("nan")
            figures[name] = per_m
            print(f"{name:13s} items {m['items']:>12,}  {m['items'] / args.seconds / 1e6:6.2f} "
                  f"M items/s  client CPU {m['cpu']:6.2f} s  = {per_m:6.3f} CPU s per M items")
    ratio = figures["LoadkitBench"] / figures["FastBench"]
    print(f"ratio loadkit / FastHttpUser (CPU per item): {ratio:.2f}  (target <= 1.3)")
    print(f"of loadkit's figure, generating the batches from their seed alone (this process, "
          f"no locust): {_generation_cpu(args):.3f} CPU s per M items")


def _generation_cpu(args: argparse.Namespace) -> float:
    import time  # noqa: PLC0415

    from loadkit.generators import BatchSpec  # noqa: PLC0415

    spec = BatchSpec.parse(items=args.items, max_items=args.items,
                           payload_bytes=args.payload_bytes)
    start = time.process_time()
    batches = max(1, 400_000 // args.items)
    for seq in range(batches):
        for _chunk in spec.batch(seq).chunks():
            pass
    return (time.process_time() - start) / (batches * args.items / 1e6)


if __name__ == "__main__" and not os.environ.get("LOADKIT_BENCH_LOCUSTFILE"):
    main()
