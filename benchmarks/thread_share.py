"""LightGBM threads against a busy core: why each xdist worker trains with one (tests/conftest.py).

One LambdaRank fit of the recommender's parameters (``ml.models.kinds.recommender``) on random
rows shaped like a small tenant's ranking examples (``--rows`` rows in queries of ``--query``
candidates, 30 features, ~6% clicked), with one and with two threads, first on an idle machine
and then while another process keeps one core busy (a pure-Python loop, as a second xdist worker
or a second Airflow task would). OpenMP's threads wait for each other at every barrier; with a
core taken, two threads lose more to that waiting than the second thread gains. The rows and their
LightGBM Dataset are built once for every setting.

    .venv/bin/python benchmarks/thread_share.py [--rows 287000] [--rounds 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _common import report

from ml.models.kinds import get_kind


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _dataset(rows: int, query: int):
    """Random ranking rows: 30 float32 features, ~6% clicked, in queries of ``query`` (the last one
    takes the remainder), as a constructed ``lightgbm.Dataset``."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 30)).astype(np.float32)
    y = (rng.random(rows) < 0.06).astype(int)
    group = np.full(rows // query, query)
    group[-1] += rows - group.sum()
    data = lgb.Dataset(x, label=y, group=group, params={"max_bin": get_kind("recommender").params["max_bin"]})
    return data.construct()


def _fit_seconds(data, rounds: int, threads: int, repeats: int) -> float:
    """The best of ``repeats`` fits' seconds on ``data`` with the recommender's parameters."""
    import lightgbm as lgb

    params = {**get_kind("recommender").params, "num_threads": threads}
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        lgb.train(params, data, num_boost_round=rounds)
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=287_000, help="training rows (the models world's largest tenant)")
    ap.add_argument("--query", type=int, default=110, help="candidates per ranking query")
    ap.add_argument("--rounds", type=int, default=60, help="boosting rounds")
    ap.add_argument("--repeats", type=int, default=2, help="fits per setting (the best is reported)")
    args = ap.parse_args()
    data = _dataset(args.rows, args.query)
    seconds: dict[str, float] = {}
    for busy in (False, True):
        stop = multiprocessing.Event()
        spinner = multiprocessing.Process(target=_spin, args=(stop,)) if busy else None
        if spinner is not None:
            spinner.start()
        try:
            for threads in (1, 2):
                label = f"{threads} thread{'s' if threads > 1 else ''}, {'one core busy' if busy else 'idle'}"
                seconds[label] = _fit_seconds(data, args.rounds, threads, args.repeats)
                print(f"{label}: {seconds[label]} s", flush=True)
        finally:
            if spinner is not None:
                stop.set()
                spinner.join()
    report(
        "thread_share", rows=args.rows, query=args.query, rounds=args.rounds, repeats=args.repeats, fit_seconds=seconds
    )


if __name__ == "__main__":
    main()
