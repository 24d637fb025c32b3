"""Internal: a load test from Python or Jupyter: locust in a subprocess, progress, a Run back.

::

    import loadkit
    run = loadkit.run(users=4, run_time="20s", items="uniform:50:200")
    run.summary()

Locust monkey-patches the interpreter at import and hangs Jupyter kernels, so it is never
imported here: :func:`run` starts ``python -m locust -f <locustfile> --headless …`` with
the locustfile that ships in the package (:data:`loadkit.locustfiles.STREAM`, the path
``loadkit locustfile`` prints) in its own process (and process group), writes locust's
output to a log file, shows progress (elapsed, batches, items/s, failed: one updating tqdm
line in a terminal, one updating display in Jupyter) read from the run's ``records.jsonl``
as it grows, and returns the
:class:`~loadkit.analysis.Run` loaded from the run directory. Interrupting (Ctrl-C, or the
kernel's stop button) stops locust cleanly (SIGTERM: it records its last batches and writes
Parquet) and still returns the run.

Options are the run settings of :data:`loadkit.options.OPTIONS` as keywords; they are
checked here, before anything starts, by the same :func:`~loadkit.options.parse_options`
the locust flags go through, then handed to locust as those flags. The secret key is never
on the command line: locust reads ``TRIGGER_SECRET_KEY`` from the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadkit.errors import ConfigError, LoadkitError
from loadkit.locustfiles import STREAM
from loadkit.vocabulary import FAILURE_OUTCOMES, Outcome

__all__ = ["run"]

LOCUSTFILE = STREAM
"""The locustfile a run uses unless told otherwise: the one that ships in the package."""
STOP_TIMEOUT = 60.0
"""Seconds locust gets to stop after SIGTERM before it is killed."""


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")
_DURATION_FORM = "a positive duration like 30, '20s', '5m', '1h30m' or '1.5m'"


def _seconds(run_time: str | float) -> float:
    """Seconds from a number or locust's duration form (``20s``, ``5m``, ``1h30m``)."""
    if isinstance(run_time, bool):
        raise ConfigError("run_time", run_time, _DURATION_FORM)
    if isinstance(run_time, (int, float)):
        total = float(run_time)
    else:
        m = _DURATION.fullmatch(str(run_time).strip())
        if m is None or not any(m.groups()):
            raise ConfigError("run_time", run_time, _DURATION_FORM)
        h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
        total = h * 3600 + mins * 60 + secs
    if not total > 0 or total == float("inf"):
        raise ConfigError("run_time", run_time, _DURATION_FORM)
    return total


def _flags(options: dict[str, Any]) -> list[str]:
    """Keyword options as locust flags (validated first by parse_options)."""
    from loadkit.options import OPTIONS  # noqa: PLC0415

    by_name = {o.name: o for o in OPTIONS}
    argv: list[str] = []
    for name, value in options.items():
        if value is None:
            continue
        opt = by_name[name]
        values = value if opt.kind == "list" and isinstance(value, (list, tuple)) else [value]
        for v in values:
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            argv += [opt.flag, text]
    return argv


class _Progress:
    """Follows records.jsonl as it grows: batches, items and failures so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.batches = self.items = self.failed = 0

    def update(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        for line in data[:cut].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("outcome") == Outcome.DROPPED:
                continue
            self.batches += 1
            self.items += int(row.get("items_accepted") or 0)
            self.failed += row.get("outcome") in FAILURE_OUTCOMES


class _NotebookBar:
    """Progress in Jupyter as one updating display (an IPython display handle): no widget,
    no stream output, so a saved notebook holds one final line, not one per refresh."""

    def __init__(self, total: float, desc: str) -> None:
        from IPython.display import HTML, display  # noqa: PLC0415 - only in a notebook

        self._html = HTML
        self.total, self.n, self.desc, self.postfix = total, 0, desc, ""
        self._handle = display(HTML(self._render()), display_id=True)

    def _render(self) -> str:
        import html  # noqa: PLC0415

        share = min(self.n / self.total, 1.0) if self.total else 1.0
        return (f'<div style="font-family:monospace">{html.escape(self.desc)} '
                f'<progress value="{share:.3f}" max="1" style="width:12em"></progress> '
                f"{self.n:,}/{round(self.total):,} s {html.escape(self.postfix)}</div>")

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        if refresh and self._handle is not None:
            self._handle.update(self._html(self._render()))

    def close(self) -> None:
        self.set_postfix_str(self.postfix)


def _in_notebook() -> bool:
    """True under a Jupyter kernel (where a terminal bar would be saved line by line)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _bar(total: float, desc: str, enabled: bool) -> Any:
    """A notebook's single updating display, else tqdm's one updating terminal line."""
    if enabled and _in_notebook():
        return _NotebookBar(total, desc)
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=round(total), desc=desc, unit="s", disable=not enabled,
                bar_format="{desc} {bar} {n_fmt}/{total_fmt} s {postfix}")


def run(users: int = 1, spawn_rate: float | None = None, run_time: str | float = "30s",
        host: str | None = None, arrival_rate: float | None = None, *,
        progress: bool = True, locustfile: str | Path | None = None,
        locust_args: tuple[str, ...] | list[str] = (),
        watch: Callable[[Path], None] | None = None, **options: Any) -> Any:
    """Run locust headless in a subprocess with ``users`` users for ``run_time``; return the
    :class:`~loadkit.analysis.Run`.

    ``host`` is the target (default: ``TRIGGER_API_URL``, else the embedded reference server);
    ``arrival_rate`` batches/s switches to the open model; ``options`` are run settings
    (``items``, ``payload_bytes``, ``faults``, ``threshold``, ``results_dir``, ``run_id`` …).
    ``run.exit_code`` is locust's exit code (3: a threshold failed) and ``run.log`` its log.
    ``watch`` is called with the run directory about twice a second while locust runs (and
    once at the end): what a caller shows as the run goes, e.g. capacity steps.
    """
    from loadkit.options import new_run_id, parse_options  # noqa: PLC0415

    if int(users) < 1:
        raise ConfigError("users", users, "a whole number >= 1")
    seconds = _seconds(run_time)
    given = {k: v for k, v in {**options, "arrival_rate": arrival_rate}.items() if v is not None}
    parsed = parse_options(**given)  # every bad value is reported here, before any start
    run_id = parsed.run.run_id or new_run_id()
    results = parsed.run.results_dir.expanduser().resolve()
    given.update(run_id=run_id, results_dir=str(results))
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / f".{run_id}.write-test"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:  # fail before any load, not at the end
        raise ConfigError("results_dir", str(parsed.run.results_dir),
                          f"a writable directory ({exc.strerror or exc})") from None
    run_dir = results / run_id
    if run_dir.exists():  # locust would refuse it, and the old run must not pass for the new
        raise ConfigError("run_id", run_id, "a run id not used yet in " + str(results))
    log_path = results / f"{run_id}.locust.log"

    if locustfile is None:
        locustfile = LOCUSTFILE
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
            "-u", str(int(users)), "-r", str(spawn_rate or users), "-t", f"{seconds:g}s",
            *(["--host", host] if host else []), *_flags(given), *locust_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    interrupted = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        records = _Progress(run_dir / "records.jsonl")
        bar = _bar(seconds, f"loadkit {run_id}", progress)
        started = time.monotonic()
        try:
            while proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
                records.update()
                if watch is not None:
                    watch(run_dir)
                elapsed = time.monotonic() - started
                bar.n = min(round(elapsed), bar.total)
                bar.set_postfix_str(f"batches {records.batches:,}  items/s "
                                    f"{records.items / max(elapsed, 1e-9):,.0f}  "
                                    f"failed {records.failed:,}", refresh=True)
        except KeyboardInterrupt:
            interrupted = True
            bar.set_postfix_str("interrupted: stopping locust …", refresh=True)
        finally:
            if proc.poll() is None:
                _stop(proc)
            bar.close()

    code = proc.returncode
    if watch is not None and run_dir.is_dir():
        watch(run_dir)
    if not run_dir.is_dir():
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise LoadkitError(f"locust exited with code {code} before the run started; "
                           f"its log ({log_path}) ends:\n" + "\n".join(tail))
    final_log = run_dir / "locust.log"
    with contextlib.suppress(OSError):
        os.replace(log_path, final_log)
        log_path = final_log

    from loadkit.analysis import load_run  # noqa: PLC0415

    result = load_run(run_dir)
    result.exit_code = code
    result.log = log_path
    result.interrupted = interrupted
    return result


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (locust stops its users, records and writes Parquet), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    while True:
        try:
            proc.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        except KeyboardInterrupt:  # a second interrupt: do not wait any longer
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
