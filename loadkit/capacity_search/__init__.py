"""Capacity search: how much can a target take, and what stops it?

Offered load is stepped on the open model's timetable (batches per second × items per batch
= offered items/s) in one run: one target, one load generator, no start-up gaps. Up from
``--capacity-start`` by a factor of 2 while steps hold, then bisection between the highest
rate that held and the lowest that failed, to ``--resolution``. The answer is the **knee**
(the highest offered items/s that held) and what limited it (:class:`Limit`). ::

    cap = loadkit.capacity(items="100", start=1000, step_seconds=5)
    cap.knee, cap.limited_by, cap.steps
    cap.plot()

From the shell: ``loadkit capacity --start 1000 --step-seconds 5 --items 100``; under locust:
``locust -f locustfiles/stream.py --headless -u 64 --capacity true …``. Nothing here imports
locust: the search runs inside the locust process (:mod:`loadkit.locust.capacity`), this
package holds its pure parts (settings, the search, step measurement, the answer).
"""

from __future__ import annotations

from loadkit.capacity_search.result import CAPACITY_JSON, Capacity
from loadkit.capacity_search.search import Search
from loadkit.capacity_search.settings import Bounds, SearchSettings
from loadkit.capacity_search.steps import Limit, StepStats, judge_step, limited_by, measure_step

__all__ = [
    "CAPACITY_JSON",
    "Bounds",
    "Capacity",
    "Limit",
    "Search",
    "SearchSettings",
    "StepStats",
    "judge_step",
    "limited_by",
    "measure_step",
]
