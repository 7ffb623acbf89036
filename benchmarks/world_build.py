"""Where a test world's build time goes: one of the suite's worlds built under cProfile.

The suite's worlds (``tests/world.py``) are most of ``make test``'s time. ``--world`` picks one:
``served`` (``tests/served.py``, the serving and security suites': three tenants, 40 days: ingest,
dbt with GX checks and publishing, snapshots, training of every kind, MLflow logging and the
gate), ``models`` (``tests/models/conftest.py``: six tenants, two regions) or ``monitoring``
(``tests/monitoring/conftest.py``: 13 tenants served by the global model, scored, a week more
landed). Reports the wall time and the cumulative seconds of the platform's own steps; ``--top``
also prints the functions with the most cumulative time.

    .venv/bin/python benchmarks/world_build.py [--world served] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
from _common import fresh_home, report

from tests.models.conftest import build_models_world
from tests.monitoring.conftest import build_monitored
from tests.served import build_served

WORLDS = {  # --world: (its module, its build)
    "served": ("tests/served.py", build_served),
    "models": ("tests/models/conftest.py", build_models_world),
    "monitoring": ("tests/monitoring/conftest.py", build_monitored),
}

STEPS = {  # label: (file suffix, function) of the steps reported
    "ingest": ("ml/data/ingest/run.py", "ingest_tenants"),
    "features (dbt + GX + publish)": ("ml/data/features.py", "build_and_check_warehouse"),
    "dbt parse": ("dbt/parser/manifest.py", "parse_manifest"),
    "train (all kinds)": ("tests/world.py", "train_all"),
    "fit": ("ml/models/fit.py", "fit"),
    "MLflow logging + gate": ("ml/models/tracking.py", "log_and_register"),
    "gate": ("ml/models/gate.py", "gate"),
    "gate bootstrap": ("ml/models/gate.py", "headline_interval"),
    "batch scoring": ("ml/models/score.py", "score_warehouse"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", choices=sorted(WORLDS), default="served", help="which world to build")
    ap.add_argument("--top", type=int, default=0, help="also print the N functions with the most cumulative time")
    args = ap.parse_args()
    mp = pytest.MonkeyPatch()
    home = fresh_home(f"world-build-{args.world}")  # under benchmarks/out/
    module, build = WORLDS[args.world]
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    build(mp, home)
    profile.disable()
    wall = time.perf_counter() - started
    mp.undo()
    stats = pstats.Stats(profile)
    rows = stats.stats.items()  # type: ignore[attr-defined]  # (file, line, function) -> (..., cumulative, ...)
    seconds = {
        label: round(sum(v[3] for (path, _, fn), v in rows if fn == name and path.endswith(suffix)), 1)
        for label, (suffix, name) in STEPS.items()
    }
    if args.top:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    report("world_build", world=module, wall_seconds=round(wall, 1), cumulative_seconds=seconds)


if __name__ == "__main__":
    main()
