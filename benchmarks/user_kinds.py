"""Churn and engagement on real and generated tenants: what the product serves against the
baseline it must beat (issue 14, point 8).

The fleet is onboarded as `benchmarks/quality.py` does (Online Retail: every country with at least
--min-customers customers, imported from the day files; the demo fleet: the generator's first
training window), then goes through the product: dbt features and snapshots, each region's global
model and each tenant's `train_tenant` for every kind asked. One row per model (each region's
global model, then each tenant) and kind: the
served family (the learnt model's `trained_on`, or the baseline made servable: `recency`,
`same_as_last_window`), the headline on the tenant's holdout against the baseline's, the training's
`chosen` comparison (the 95% bootstrap interval of the learnt model's lead) and the gate's reason.

    .venv/bin/python benchmarks/user_kinds.py --fleet retail
    .venv/bin/python benchmarks/user_kinds.py --fleet demo --kinds churn

Reads Online Retail from ../shared/datasets/online-retail/ (or $TENANTFLOW_DATASETS); never copies it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_home, report
from quality import build_features, demo_fleet, retail_fleet

from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.models.kinds import get_kind


def kind_rows(kind_name: str, members: list[tuple[str, str]], settings: Settings) -> list[dict]:
    """Each region's global model, then every member's training of ``kind_name``: one row each."""
    from ml.models import registry
    from ml.models.runs import global_regions
    from ml.models.train import train_global, train_tenant

    c, rows = registry.client(settings), []
    for region in global_regions(TenantStore(settings).list()):
        started = time.perf_counter()
        r = train_global(kind_name, region, "benchmark", settings)
        rows.append(_row(kind_name, r, c, time.perf_counter() - started))
    for _, tid in members:
        started = time.perf_counter()
        r = train_tenant(kind_name, tid, "benchmark", settings)
        rows.append(_row(kind_name, r, c, time.perf_counter() - started))
    return rows


def _row(kind_name: str, r: dict, c: object, seconds: float) -> dict:
    """One training's outcome: what it serves against the baseline, and why."""
    kind = get_kind(kind_name)
    h = kind.headline
    row = {"tenant_id": r["tenant_id"], "kind": kind_name, "train_seconds": round(seconds, 1)}
    if "skipped" in r:
        return row | {"skipped": r["skipped"]}
    run = c.get_run(r["run_id"]).data  # type: ignore[attr-defined]
    params = run.params
    return row | {
        "served": r["family"] if r["family"] != "lightgbm" else r["trained_on"],
        "headline": h,
        "served_headline": r["metrics"].get(h),
        "baseline": kind.baseline_name,
        "baseline_headline": r["baseline_metrics"].get(h),
        "holdout_examples": run.metrics.get("rows_holdout"),
        "eligibility": r.get("eligibility", "global model"),
        "chosen": params.get("chosen", ""),
        "promoted": r["promoted"],
        "reason": r["reason"],
    }


def _line(row: dict) -> str:
    if "skipped" in row:
        return f"{row['tenant_id']:>16} {row['kind']:>10}  skipped: {row['skipped']}"
    ours, base = row["served_headline"], row["baseline_headline"]
    return (
        f"{row['tenant_id']:>16} {row['kind']:>10}  served {row['served']:<18} {row['headline']} "
        f"{ours if ours is None else round(ours, 4)} vs {row['baseline']} {base if base is None else round(base, 4)}"
        f"  ({row['eligibility']})  chosen: {row['chosen']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", choices=["retail", "demo"], default="retail")
    ap.add_argument("--min-customers", type=int, default=50)
    ap.add_argument("--kinds", default="churn,engagement", help="comma-separated model kinds")
    a = ap.parse_args()
    home = fresh_home(f"user-kinds-{a.fleet}")
    settings = get_settings()
    members = retail_fleet(a.min_customers) if a.fleet == "retail" else demo_fleet()
    started = time.perf_counter()
    build_features(settings)
    build_seconds = time.perf_counter() - started
    rows = []
    for kind in a.kinds.split(","):
        for row in kind_rows(kind, members, settings):
            rows.append(row | {"fleet": a.fleet})
            print(_line(row), flush=True)
    report("user_kinds", home=str(home), fleet=a.fleet, build_seconds=round(build_seconds, 1), rows=rows)


if __name__ == "__main__":
    main()
