"""Synthetic runs with known distributions, and real short runs, for the regression tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest


def synthetic_records(rng: np.random.Generator, *, n: int = 6000, users: int = 2,
                      median_ms: float = 8.0, sigma: float = 0.5,
                      scale: float = 1.0) -> pd.DataFrame:
    """Closed-model records: ``users`` users send batches back to back, each batch's total
    latency lognormal (median ``median_ms`` × ``scale``, shape ``sigma``), 100 items each."""
    per = n // users
    lat = rng.lognormal(np.log(median_ms), sigma, (users, per)) * scale
    end = (1_700_000_000.0 + np.cumsum(lat, axis=1) / 1000).ravel()
    lat = lat.ravel()
    return pd.DataFrame({
        "run_id": "synthetic", "user_id": np.repeat(np.arange(users), per),
        "started_at": end - lat / 1000, "ended_at": end, "total_ms": lat,
        "create_ms": lat * 0.4, "stream_ms": lat * 0.6, "items_accepted": 100,
        "bytes_sent": 30_000, "attempts": 1, "rate_limited": 0, "violations": 0,
        "stall_ms": 0.0, "outcome": "sealed",
    })


@pytest.fixture(scope="session")
def synth() -> Callable[..., pd.DataFrame]:
    """The synthetic record maker (see :func:`synthetic_records`)."""
    return synthetic_records


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory):
    """Three real 8-second open-model runs against the embedded server (80 batches/s, 8
    users), one after the other: a baseline, one with the same settings, then one whose
    server delays every create by 30 ms (8 users keep up with that at ~40 % busy).

    Open, not closed: a closed-model run sends as fast as its share of the CPU allows, and
    with a busy core the twin of the baseline read 34 % slower when the two ran side by side
    and up to 12 % one after the other (both flagged as regressions). At a fixed rate well
    under capacity both runs do the same work; only their latencies vary."""
    import warnings  # noqa: PLC0415

    import loadkit  # noqa: PLC0415

    results = tmp_path_factory.mktemp("regression-runs")

    def one(name: str, **extra: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = loadkit.run(users=8, run_time="8s", arrival_rate=80, progress=False,
                              results_dir=results, run_id=name, **extra)
        assert run.exit_code == 0, run.log.read_text()[-2000:] if run.log else name
        return run.path

    return {"base": one("base"), "same": one("same"),
            "delayed": one("delayed", server_create_delay="0.03")}
