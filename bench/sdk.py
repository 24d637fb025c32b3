"""The SDK-shaped client mode against the official SDK, on one reference server.

Run: ``python bench/sdk.py [--items 1000] [--payload-bytes 256] [--runs 5] [--sdk-dir DIR]``.

Both sides send batches of ``--items`` items to the same reference server (process mode) and
are timed per batch, create and stream together (what an application waits for):

- **loadkit, client mode sdk**: ``BatchClient(mode="sdk").send(batch)``: one NDJSON line per
  write, pulled item by item;
- **the official SDK**: ``tasks.batchTrigger("loadkit-task", items)`` of ``@trigger.dev/sdk``
  (from npm) in one Node process, pointed at the server with ``TRIGGER_API_URL`` and
  ``TRIGGER_SECRET_KEY``; each item's payload is a JSON object carrying as many bytes as
  loadkit's payloads. The Node process's start-up is not timed; its first batch is a warm-up.

Items/s = items ÷ the batch's wall time; the median of ``--runs`` batches is shown, then the
ratio loadkit sdk ÷ official SDK (target: within ±25 %, 0.75 to 1.25). The SDK is installed
with ``npm install @trigger.dev/sdk`` into ``--sdk-dir`` (a temporary directory by default)
unless it is there already. When Node or npm is missing, or the SDK fails against the server,
the reason is printed and only loadkit's figure is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.generators import BatchSpec
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
TARGET = (0.75, 1.25)

NODE_SCRIPT = r"""
const { tasks } = require("@trigger.dev/sdk");
const [items, payloadBytes, runs] = process.argv.slice(2).map(Number);
(async () => {
  const make = () => Array.from({ length: items }, (_, i) => ({
    payload: { i, data: "a".repeat(payloadBytes) },
  }));
  await tasks.batchTrigger("loadkit-task", make());  // warm-up: connections, code paths
  const rates = [];
  for (let r = 0; r < runs; r++) {
    const batch = make();
    const t0 = performance.now();
    const answer = await tasks.batchTrigger("loadkit-task", batch);
    const seconds = (performance.now() - t0) / 1000;
    if (!answer || !answer.batchId) throw new Error("no batch id in " + JSON.stringify(answer));
    rates.push(items / seconds);
  }
  process.stdout.write(JSON.stringify({ rates }) + "\n");
})().catch((e) => {
  const cause = e && e.cause ? " (cause: " + (e.cause.message || e.cause) + ")" : "";
  process.stderr.write(String(e && e.message || e) + cause + "\n");
  process.exit(1);
});
"""


def _loadkit_rates(url: str, spec: BatchSpec, runs: int) -> list[float]:
    rates: list[float] = []
    with BatchClient(url, KEY, mode="sdk") as client:
        client.send(spec.batch(0))  # warm-up, as the SDK's side
        for seq in range(1, runs + 1):
            batch = spec.batch(seq)
            t0 = time.perf_counter()
            result = client.send(batch)
            seconds = time.perf_counter() - t0
            if not result.sealed or result.violations:
                raise SystemExit(f"loadkit sdk mode did not seal batch {seq} cleanly: "
                                 f"{result.as_dict()}")
            rates.append(batch.run_count / seconds)
    return rates


def _install_sdk(sdk_dir: Path) -> str | None:
    """Install ``@trigger.dev/sdk`` into ``sdk_dir``; the reason when it cannot be done."""
    if (sdk_dir / "node_modules" / "@trigger.dev" / "sdk").is_dir():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    sdk_dir.mkdir(parents=True, exist_ok=True)
    if not (sdk_dir / "package.json").exists():
        (sdk_dir / "package.json").write_text('{"name": "loadkit-sdk-bench", "private": true}\n')
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "@trigger.dev/sdk"],
                          cwd=sdk_dir, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        return f"npm install @trigger.dev/sdk failed: {proc.stderr.strip()[-500:]}"
    return None


def _sdk_rates(url: str, sdk_dir: Path, items: int, payload_bytes: int,
               runs: int) -> tuple[list[float] | None, str]:
    """The official SDK's items/s per batch, or None and why it failed."""
    node = shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)
    if node is None:
        return None, "node is not installed"
    why = _install_sdk(sdk_dir)
    if why is not None:
        return None, why
    version = json.loads((sdk_dir / "node_modules" / "@trigger.dev" / "sdk" / "package.json")
                         .read_text())["version"]
    script = sdk_dir / "loadkit_bench.js"
    script.write_text(NODE_SCRIPT)
    env = {**os.environ, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": KEY}
    proc = subprocess.run([node, str(script), str(items), str(payload_bytes), str(runs)],
                          cwd=sdk_dir, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    if proc.returncode != 0:
        return None, (f"@trigger.dev/sdk {version} tasks.batchTrigger failed against the "
                      f"reference server: {proc.stderr.strip()[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["rates"], version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--payload-bytes", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sdk-dir", default=None,
                        help="where @trigger.dev/sdk is (or gets) installed (default: a "
                        "temporary directory)")
    args = parser.parse_args()
    spec = BatchSpec.parse(items=str(args.items), payload_bytes=str(args.payload_bytes),
                           max_items=str(max(1000, args.items)), seed="1")
    with tempfile.TemporaryDirectory(prefix="loadkit-sdk-") as tmp, \
            ReferenceServer(mode="process", max_items=max(1000, args.items)) as server:
        sdk_dir = Path(args.sdk_dir) if args.sdk_dir else Path(tmp)
        print(f"reference server {server.url}; {args.runs} batches of {args.items} items, "
              f"{args.payload_bytes} B payloads, create + stream timed; medians")
        ours = statistics.median(_loadkit_rates(server.url, spec, args.runs))
        print(f"loadkit --client sdk:      {ours:>10,.0f} items/s")
        rates, note = _sdk_rates(server.url, sdk_dir, args.items, args.payload_bytes, args.runs)
        if rates is None:
            print(f"official SDK: not measured: {note}")
            print("ratio: n/a (only loadkit's figure)")
            return
        theirs = statistics.median(rates)
        print(f"@trigger.dev/sdk {note} tasks.batchTrigger: {theirs:>10,.0f} items/s")
        ratio = ours / theirs
        verdict = "within" if TARGET[0] <= ratio <= TARGET[1] else "OUTSIDE"
        print(f"ratio loadkit sdk ÷ official SDK: {ratio:.2f} ({verdict} the ±25 % target)")


if __name__ == "__main__":
    sys.exit(main())
