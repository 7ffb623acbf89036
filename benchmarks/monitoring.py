"""Monitoring time per tenant against reference rows and feature count (Evidently 0.7).

What one tenant's feature-drift check costs in ``ml.monitoring``, step by step as ``read_windows``
and ``check_tenant`` do it: draw the current window from a DuckDB table of ``rows`` rows with
the same reservoir-sampling query (``sample_rows``, ``TENANTFLOW_MONITOR_SAMPLE_ROWS``), sample
the reference (the snapshot's Parquet sample), score both with a LightGBM model, run
Evidently's ``DataDriftPreset`` over the feature columns plus the prediction, and render the
HTML report (timed apart). The columns are synthetic (log-normal, half of them shifted in the
current window) because the cost depends on their shape, not on what they mean.
``--no-sample`` also runs Evidently on whole windows (<= 100k rows), which is why the monitor
samples.

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

from benchmarks._common import report
from ml.monitoring.drift import drift_report
from ml.monitoring.policy import MonitorPolicy


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
    """One check: (sampled) windows from DuckDB, scores, Evidently, then the HTML rendering."""
    import duckdb
    import lightgbm as lgb

    ref, cur = frames(rows, features)
    cols = [c for c in ref.columns if c != "prediction"]
    ref, cur = ref[cols], cur[cols]
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 1, "num_threads": 1},
        lgb.Dataset(ref[cols].iloc[:20_000], label=(ref["f000"].iloc[:20_000] > 1).astype(int)),
        num_boost_round=50,
    )
    db = tmp / f"w{rows}-{features}.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create or replace table current_window as select * from cur order by all")
    policy = MonitorPolicy()
    n = policy.sample_rows if sample else len(cur)
    t0 = time.perf_counter()
    current = con.execute(
        f"select * from (select * from current_window order by all) using sample reservoir({n} rows) repeatable (7)"
    ).df()
    reference = sample(ref, policy.sample_rows) if sample else ref
    t1 = time.perf_counter()
    reference = reference.assign(prediction=booster.predict(reference[cols], num_threads=1))
    current = current.assign(prediction=booster.predict(current[cols], num_threads=1))
    t2 = time.perf_counter()
    dist, _ = drift_report(reference, current, [*cols, "prediction"], [], policy.column_threshold)
    t3 = time.perf_counter()
    drift_report(
        reference, current, [*cols, "prediction"], [], policy.column_threshold, tmp / f"r{rows}-f{features}.html"
    )
    t4 = time.perf_counter()
    con.close()
    db.unlink()
    drifted = sum(v > policy.column_threshold for k, v in dist.items() if k != "prediction")
    html = max(0.0, (t4 - t3) - (t3 - t2))  # the same report again, with the HTML saved
    return {
        "rows": rows,
        "features": features,
        "sampled": sample,
        "read_sample_seconds": round(t1 - t0, 3),
        "score_seconds": round(t2 - t1, 3),
        "evidently_seconds": round(t3 - t2, 3),
        "html_seconds": round(html, 3),
        "seconds": round((t3 - t0) + html, 3),
        "drifted_columns": drifted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--features", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--no-sample", action="store_true", help="also time Evidently on whole windows (<= 100k rows)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        one(1000, 3, True, Path(d))  # Evidently's first call in a process pays its import and warm-up
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
    report("monitoring", runs=results, target_seconds=5.0, at_1m_rows_30_features=target["seconds"] if target else None)


if __name__ == "__main__":
    main()
