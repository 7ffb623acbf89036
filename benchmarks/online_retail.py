"""The whole year of Online Retail (541,909 rows, 305 daily files) onboarded as a fleet of 38 tenants.

One tenant per country (examples/online-retail/fleet.yaml), each with the same source spec
(examples/online-retail/source-spec.yaml), each importing all 305 files as history and keeping
its own rows. Checks that the counts reconcile with the facts re-derived from the files (and with
the data set's README), then reports time and rows/s. Then optionally builds the features.

    .venv/bin/python benchmarks/online_retail.py [--features]

Reads the data set from ../shared/datasets/online-retail/ (or $TENANTFLOW_DATASETS); never copies it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_home, report

from ml.core.settings import get_settings
from tests import online_retail as retail

README_FACTS = {"rows": 541_909, "without_customer": 135_080, "duplicates_with_customer": 5_225}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", action="store_true", help="also build every warehouse's features")
    args = parser.parse_args()
    files = retail.day_files()
    if not files:
        sys.exit(f"skipped: {retail.ABSENT}")
    home = fresh_home("online-retail")
    settings = get_settings()
    started = time.perf_counter()
    facts = retail.facts(files)
    facts_seconds = time.perf_counter() - started
    tenants = retail.fleet(files)
    retail.onboard(tenants)

    started = time.perf_counter()
    summaries = retail.import_fleet(settings, tenants, files)
    seconds = time.perf_counter() - started
    total: Counter[str] = Counter()
    for s in summaries.values():
        total.update({k: s[k] for k in ("rows_in", "landed", "duplicates_dropped")})
        total.update(s["quarantined"])
    assert {k: facts[k] for k in README_FACTS} == README_FACTS, facts
    assert total["rows_in"] == facts["rows"], (total, facts)
    assert total["null_user_id"] == facts["without_customer"], (total, facts)
    assert total["duplicates_dropped"] == facts["duplicates_with_customer"], (total, facts)
    big = max(summaries.values(), key=lambda s: s["rows_in"])
    figures = {
        "home": str(home),
        "files": len(files),
        "tenants": len(tenants),
        "rows_in": total["rows_in"],
        "landed": total["landed"],
        "quarantined_null_user_id": total["null_user_id"],
        "duplicates_dropped": total["duplicates_dropped"],
        "import_seconds": round(seconds, 1),
        "rows_per_second": round(total["rows_in"] / seconds),
        "largest_tenant": big["tenant_id"],
        "largest_tenant_rows": big["rows_in"],
        "largest_tenant_seconds": big["seconds"],
        "facts_seconds": round(facts_seconds, 1),
    }
    if args.features:
        from ml.core.tenants import TenantStore
        from ml.core.warehouse import warehouses
        from ml.data.features import build_and_check_warehouse
        from ml.models.kinds import online_marts

        started = time.perf_counter()
        health = {}
        for wh in warehouses(TenantStore(settings).list()):
            res = build_and_check_warehouse(wh, online_marts(), settings)
            health.update({t: h["healthy"] for t, h in res["health"].items()})
            figures[f"failed_nodes_{wh.key}"] = len(res["failed_nodes"])
        figures["features_seconds"] = round(time.perf_counter() - started, 1)
        figures["healthy_tenants"] = sum(health.values())
    report("online_retail", **figures)


if __name__ == "__main__":
    main()
