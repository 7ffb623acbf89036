"""How often the drift check flags windows where nothing changed, and whether it still sees a shift.

Ten gamma(2, 5) columns per window (the current window's scale times ``--scale``), judged as the
monitor judges a kind's features: Evidently's normed Wasserstein distance per column against the
policy's 0.1 alone ("fixed") and against each column's chance threshold
(:func:`ml.monitoring.drift.chance_thresholds`); a window is flagged when at least half of its
columns drifted. Reports, per window size, the share of flagged windows, the share of drifted
columns, the mean threshold and the seconds the permutation null costs per window.

    .venv/bin/python benchmarks/drift_calibration.py [--seeds 20] [--rows 300 2000 20000] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from _common import report

from ml.monitoring.drift import chance_thresholds, drift_report

COLUMNS = [f"c{i}" for i in range(10)]
FLOOR = 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rows", type=int, nargs="+", default=[300, 2_000, 20_000])
    ap.add_argument("--scale", type=float, default=1.0, help="the current window's scale factor (1: no change)")
    args = ap.parse_args()
    for rows in args.rows:
        fixed_windows = chance_windows = 0
        fixed_cols, chance_cols, thresholds, seconds = [], [], [], 0.0
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            ref = pd.DataFrame({c: rng.gamma(2, 5, rows) for c in COLUMNS})
            cur = pd.DataFrame({c: rng.gamma(2, 5 * args.scale, rows) for c in COLUMNS})
            distances, _ = drift_report(ref, cur, COLUMNS, [], FLOOR)
            start = time.perf_counter()
            chance = chance_thresholds(ref, cur, COLUMNS, [], FLOOR)
            seconds += time.perf_counter() - start
            fixed = [distances[c] > FLOOR for c in COLUMNS]
            judged = [distances[c] > chance[c] for c in COLUMNS]
            fixed_windows += np.mean(fixed) >= 0.5
            chance_windows += np.mean(judged) >= 0.5
            fixed_cols += fixed
            chance_cols += judged
            thresholds += list(chance.values())
        report(
            "drift_calibration",
            rows_per_window=rows,
            scale=args.scale,
            windows=args.seeds,
            flagged_fixed=round(fixed_windows / args.seeds, 3),
            flagged_chance=round(chance_windows / args.seeds, 3),
            columns_drifted_fixed=round(float(np.mean(fixed_cols)), 3),
            columns_drifted_chance=round(float(np.mean(chance_cols)), 3),
            mean_threshold=round(float(np.mean(thresholds)), 3),
            null_seconds_per_window=round(seconds / args.seeds, 2),
        )


if __name__ == "__main__":
    main()
