"""The SDK-shaped client mode against the official SDK, on one reference server.

Run: ``python bench/sdk.py [--items 1000] [--payload-bytes 256] [--rounds 200] [--sdk-dir DIR]
[--json PATH]``.

Both sides send batches of ``--items`` items to the same reference server (process mode) and
are timed per batch, create and stream together (what an application waits for):

- **loadkit, client mode sdk**: ``BatchClient(mode="sdk").send(batch)``: one NDJSON line per
  write, pulled item by item;
- **the official SDK**: ``tasks.batchTrigger("loadkit-task", items)`` of ``@trigger.dev/sdk``
  (from npm) in one Node process that stays up for the whole run, pointed at the server with
  ``TRIGGER_API_URL`` and ``TRIGGER_SECRET_KEY``, sending one batch each time this process
  asks (a line on its stdin) and answering with its items/s; each item's payload is a JSON
  object carrying as many bytes as loadkit's payloads. The Node process's start-up is not
  timed.

Rounds (``bench/_rounds.py``): one discarded warm-up round (a batch each side), then
``--rounds`` rounds (``--runs`` is the same option; default 200) of one batch each side,
alternating (ABBA). Items/s = items ÷ the batch's wall time; each round's ratio is loadkit
sdk ÷ official SDK items/s in that round, and the figure is the median of those ratios
(target: within ±25 %, 0.75 to 1.25), its spread on the line under it; the items/s shown are
the medians over the rounds. Cost at the default size on a 2-core machine: ~0.09 s per
round (measured), ~20 s in all once the SDK is installed (``npm install`` adds ~5 s with
npm's cache warm).

The SDK is installed with ``npm install @trigger.dev/sdk`` into ``--sdk-dir`` (a temporary
directory by default) unless it is there already. When Node or npm is missing, or the SDK
fails (at start-up or against the server), the reason is printed and only loadkit's figure
is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _rounds

from loadkit import wire
from loadkit.client import BatchClient
from loadkit.generators import BatchSpec
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
TARGET = (0.75, 1.25)

NODE_SCRIPT = r"""
const { tasks } = require("@trigger.dev/sdk");
const readline = require("readline");
const [items, payloadBytes] = process.argv.slice(2).map(Number);
const make = () => Array.from({ length: items }, (_, i) => ({
  payload: { i, data: "a".repeat(payloadBytes) },
}));
// one batch for each "batch" line on stdin (the driver alternates them with loadkit's
// batches), its items/s on stdout; the process's start-up is not timed
(async () => {
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim() !== "batch") continue;
    const batch = make();
    const t0 = performance.now();
    const answer = await tasks.batchTrigger("loadkit-task", batch);
    const seconds = (performance.now() - t0) / 1000;
    if (!answer || !answer.batchId) throw new Error("no batch id in " + JSON.stringify(answer));
    process.stdout.write(JSON.stringify({ rate: items / seconds }) + "\n");
  }
})().catch((e) => {
  const cause = e && e.cause ? " (cause: " + (e.cause.message || e.cause) + ")" : "";
  process.stderr.write(String(e && e.message || e) + cause + "\n");
  process.exit(1);
});
"""


class SDKFailed(Exception):
    """The official SDK cannot be measured here (the message says why)."""


def _loadkit_batch(client: BatchClient, spec: BatchSpec, seq: Iterator[int]) -> float:
    """One batch through loadkit's sdk mode; its items/s (create + stream)."""
    n = next(seq)
    batch = spec.batch(n)
    t0 = time.perf_counter()
    result = client.send(batch)
    seconds = time.perf_counter() - t0
    if not result.sealed or result.violations:
        raise SystemExit(f"loadkit sdk mode did not seal batch {n} cleanly: "
                         f"{result.as_dict()}")
    return batch.run_count / seconds


class NodeSDK:
    """The official SDK in one Node process: :meth:`batch` has it send one batch."""

    def __init__(self, url: str, sdk_dir: Path, items: int, payload_bytes: int) -> None:
        self.version = ""
        node = shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists()
                                        else None)
        if node is None:
            raise SDKFailed("node is not installed")
        why = _install_sdk(sdk_dir)
        if why is not None:
            raise SDKFailed(why)
        self.version = json.loads((sdk_dir / "node_modules" / "@trigger.dev" / "sdk" /
                                   "package.json").read_text())["version"]
        script = sdk_dir / "loadkit_bench.js"
        script.write_text(NODE_SCRIPT)
        env = {**os.environ, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": KEY}
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [node, str(script), str(items), str(payload_bytes)], cwd=sdk_dir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self._answer("ready")

    def _answer(self, key: str) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            self.stderr.seek(0)
            raise SDKFailed(f"@trigger.dev/sdk {self.version}: its Node process ended "
                            f"(exit code {self.proc.returncode}): "
                            f"{self.stderr.read().strip()[-1000:]}")
        return json.loads(line)[key]

    def batch(self) -> float:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("batch\n")
            self.proc.stdin.flush()
        except OSError:  # it ended: _answer says why
            pass
        return float(self._answer("rate"))

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--payload-bytes", type=int, default=256)
    _rounds.add_arguments(parser, default=200, aliases=("--runs",), per_round="~0.09 s")
    parser.add_argument("--sdk-dir", default=None,
                        help="where @trigger.dev/sdk is (or gets) installed (default: a "
                        "temporary directory)")
    args = parser.parse_args()
    spec = BatchSpec.parse(items=str(args.items), payload_bytes=str(args.payload_bytes),
                           max_items=str(max(1000, args.items)), seed="1")
    report = _rounds.Report("sdk")
    report.info.update(items=args.items, payload_bytes=args.payload_bytes)
    name = "ratio loadkit sdk ÷ official SDK"
    target = _rounds.within(*TARGET, "0.75 to 1.25 (±25 %)")
    note = ""
    version = ""
    with tempfile.TemporaryDirectory(prefix="loadkit-sdk-") as tmp, \
            ReferenceServer(mode="process", max_items=max(1000, args.items)) as server, \
            BatchClient(server.url, KEY, mode="sdk") as client:
        sdk_dir = Path(args.sdk_dir) if args.sdk_dir else Path(tmp)
        print(f"reference server {server.url}; {args.rounds} rounds of one batch of "
              f"{args.items} items each side, {args.payload_bytes} B payloads, create + "
              "stream timed; medians", flush=True)
        seq = iter(range(10**9))
        variants: dict[str, Callable[[], float]] = {
            "loadkit": lambda: _loadkit_batch(client, spec, seq)}
        sdk: NodeSDK | None = None
        try:
            sdk = NodeSDK(server.url, sdk_dir, args.items, args.payload_bytes)
            version = sdk.version
            got = _rounds.interleave({**variants, "sdk": sdk.batch}, args.rounds)
        except SDKFailed as e:  # loadkit's figure alone
            note = str(e)
            got = _rounds.interleave(variants, args.rounds)
        finally:
            if sdk is not None:
                sdk.close()
    print(got.timing_line())
    ours = report.add("loadkit --client sdk items/s", got["loadkit"], fmt=",.0f")
    print(f"loadkit --client sdk:      {ours.median:>10,.0f} items/s")
    if note:
        print(f"official SDK: not measured: {note}")
        print("ratio: n/a (only loadkit's figure)")
        report.add(name, [], target=target, note=f"not measured: {note}")
        report.write(args.json)
        return
    theirs = report.add(f"@trigger.dev/sdk {version} items/s", got["sdk"], fmt=",.0f")
    print(f"@trigger.dev/sdk {version} tasks.batchTrigger: {theirs.median:>10,.0f} items/s")
    fig = report.add(name, _rounds.ratios(got["loadkit"], got["sdk"]), target=target)
    verdict = "within" if fig.met else "OUTSIDE"
    print(f"ratio loadkit sdk ÷ official SDK: {fig.median:.2f} ({verdict} the ±25 % target)")
    print(fig.spread_line())
    report.write(args.json)


if __name__ == "__main__":
    sys.exit(main())
