"""Monitoring time per tenant against reference rows and feature count (Evidently 0.7).

What one tenant's feature-drift check costs in ``ml.monitor``: sample both windows to
``sample_rows`` (``TENANTFLOW_MONITOR_SAMPLE_ROWS``), run Evidently's ``DataDriftPreset`` over the
feature columns plus the prediction, save the HTML report. The frames are synthetic (normal and
log-normal columns, half of them shifted in the current window) because the cost depends on
their shape, not on what the columns mean. ``--no-sample`` shows what Evidently costs on the
whole window, which is why the monitor samples.

    python benchmarks/monitoring.py --rows 10000 100000 1000000 --features 10 30 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import report  # noqa: E402
from ml.monitor import MonitorPolicy, _sample, drift_report  # noqa: E402


def frames(rows: int, features: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cols = [f"f{i:03d}" for i in range(features)]
    ref = pd.DataFrame(rng.lognormal(0, 1, (rows, features)).astype(np.float32), columns=cols)
    cur_rows = max(1000, rows // 5)
    cur = pd.DataFrame(rng.lognormal(0, 1, (cur_rows, features)).astype(np.float32), columns=cols)
    cur.iloc[:, : features // 2] *= 1.3  # half the columns drift
    ref["prediction"], cur["prediction"] = rng.normal(0, 1, rows), rng.normal(0.2, 1, cur_rows)
    return ref, cur


def one(rows: int, features: int, sample: bool, tmp: Path) -> dict:
    ref, cur = frames(rows, features)
    policy = MonitorPolicy()
    t0 = time.perf_counter()
    if sample:
        ref, cur = _sample(ref, policy.sample_rows), _sample(cur, policy.sample_rows)
    t1 = time.perf_counter()
    dist, _ = drift_report(ref, cur, list(ref.columns), [], policy.column_threshold, tmp / f"r{rows}-f{features}.html")
    t2 = time.perf_counter()
    drifted = sum(v > policy.column_threshold for v in dist.values())
    return {"rows": rows, "features": features, "sampled": sample, "sample_seconds": round(t1 - t0, 3),
            "evidently_seconds": round(t2 - t1, 3), "seconds": round(t2 - t0, 3), "drifted_columns": drifted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--features", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--no-sample", action="store_true", help="also time Evidently on whole windows (<= 100k rows)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        for rows in args.rows:
            for f in args.features:
                r = one(rows, f, True, Path(d))
                print(r, flush=True)
                results.append(r)
                if args.no_sample and rows <= 100_000:
                    r = one(rows, f, False, Path(d))
                    print(r, flush=True)
                    results.append(r)
    target = next((r for r in results if r["rows"] == 1_000_000 and r["features"] == 30 and r["sampled"]), None)
    report("monitoring", runs=results, target_seconds=5.0,
           at_1m_rows_30_features=target["seconds"] if target else None)


if __name__ == "__main__":
    main()
