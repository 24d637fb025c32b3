"""Internal: the answer of a capacity search, as written to ``capacity.json`` and read back.

A capacity run directory is an ordinary run directory (``run.json``, records, Parquet) plus
``capacity.json``: the knee, what limited it, the bounds in force and one row per step. Step
membership of a record is its intended start: step *i* holds the batches intended in
``[window_start, window_start + window_s)``. :class:`Capacity` reads it back for notebooks,
the report and ``loadkit compare``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadkit import humanize
from loadkit.errors import RecordsError

if TYPE_CHECKING:
    import pandas as pd

    from loadkit.analysis import Run

__all__ = ["CAPACITY_JSON", "STEPS_JSONL", "Capacity", "answer_text", "step_line"]

CAPACITY_JSON = "capacity.json"
STEPS_JSONL = "capacity_steps.jsonl"
"""One line per finished step, appended as the search goes (what progress displays read)."""

STEP_COLUMNS = (
    "number", "offered_items_per_s", "achieved_items_per_s", "offered_mb_per_s",
    "achieved_mb_per_s", "p50_ms", "p95_ms", "p99_ms", "stall_share", "drop_rate",
    "rate_limited", "error_rate", "violations", "client_cpu", "lag_p95_ms", "service_p95_ms",
    "batches",
    "window_start", "window_s", "duration_s", "latency_bound_ms", "held", "limited_by",
    "failed_on",
)


def step_line(step: dict[str, Any]) -> str:
    """One terminal line for a finished step."""
    verdict = "held  " if step.get("held") else "FAILED"
    line = (f"step {step['number']:>2}  offered {step['offered_items_per_s']:>10,.0f} items/s"
            f"  achieved {step['achieved_items_per_s']:>10,.0f} items/s"
            f"  p95 {humanize.ms(step.get('p95_ms')):>9}"
            f"  stall {humanize.share(step.get('stall_share')):>7}"
            f"  dropped {humanize.share(step.get('drop_rate')):>7}"
            f"  429s {humanize.count(step.get('rate_limited')):>5}"
            f"  cpu {humanize.share(step.get('client_cpu')):>6}  {verdict}")
    if not step.get("held") and step.get("failed_on"):
        line += f"  ({'; '.join(step['failed_on'])})"
    return line


def answer_text(answer: dict[str, Any]) -> str:
    """The answer in one or two sentences, for the terminal and the report."""
    knee = answer.get("knee_items_per_s")
    limit = answer.get("limited_by")
    if knee is None:
        text = ("no step held, down to {:,.0f} items/s: the target could not take even the "
                "lowest load tried (limited by {}); try a lower --start").format(
                    answer.get("lowest_tried_items_per_s") or 0, limit)
    else:
        text = f"capacity {knee:,.0f} items/s"
        mb = answer.get("knee_mb_per_s")
        if mb:
            text += f" ({humanize.mb_per_s(mb)})"
        text += f", limited by {limit}"
    note = answer.get("note")
    return text + (f". {note}" if note else "")


@dataclass
class Capacity:
    """A capacity search's answer: :attr:`knee`, :attr:`limited_by`, :attr:`steps`."""

    path: Path
    answer: dict[str, Any]
    _run: Run | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Capacity:
        """Read ``capacity.json`` of a run directory."""
        run_dir = Path(path).expanduser()
        file = run_dir / CAPACITY_JSON
        try:
            answer = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordsError(f"{run_dir} has no {CAPACITY_JSON}: it is not the directory of "
                               "a capacity search (loadkit capacity …)") from None
        except (OSError, ValueError) as exc:
            raise RecordsError(f"{file} cannot be read: {exc}") from None
        if not isinstance(answer, dict):
            raise RecordsError(f"{file} is not a JSON object")
        return cls(run_dir, answer)

    @property
    def knee(self) -> float | None:
        """The highest offered items/s that held (None: no step held)."""
        return self.answer.get("knee_items_per_s")

    @property
    def limited_by(self) -> str:
        """``target_ingest``, ``rate_limit``, ``errors``, ``client`` or ``max``."""
        return str(self.answer.get("limited_by"))

    @property
    def lower_bound(self) -> bool:
        """True when the load generator saturated: the target may take more than the knee."""
        return bool(self.answer.get("lower_bound"))

    @property
    def steps(self) -> pd.DataFrame:
        """One row per step, in the order they ran."""
        import pandas as pd  # noqa: PLC0415

        rows = self.answer.get("steps") or []
        frame = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
        return frame.set_index("number")

    @property
    def run(self) -> Run:
        """The run's records (every step's batches), as :func:`loadkit.load_run` gives."""
        if self._run is None:
            from loadkit.analysis import load_run  # noqa: PLC0415

            self._run = load_run(self.path)
        return self._run

    def plot(self, ax: Any = None) -> Any:
        """The classic picture (:func:`loadkit.plots.capacity`)."""
        from loadkit import plots  # noqa: PLC0415

        return plots.capacity(self, ax=ax)

    def __repr__(self) -> str:
        return f"<Capacity {self.path.name}: {answer_text(self.answer)}>"

    def __str__(self) -> str:
        lines = [f"loadkit capacity: {answer_text(self.answer)}"]
        lines += [step_line(s) for s in self.answer.get("steps") or []]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html  # noqa: PLC0415

        return f"<p><b>{html.escape(answer_text(self.answer))}</b></p>" + \
            self.steps.to_html(float_format=lambda v: f"{v:,.2f}")
