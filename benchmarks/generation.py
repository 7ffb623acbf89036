"""Generation rate: events per second written to landing (all formats, all cores).

.venv/bin/python benchmarks/generation.py --tenants 10 --users 14000 --days 14
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date

from _common import fresh_home, report

from ml.data.generate import generate
from ml.data.generate.config import fleet_config

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--users", type=int, default=14000)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    a = ap.parse_args()
    home = fresh_home("generation")
    config = fleet_config(a.tenants, a.users, a.items, a.days, seed=1, end_date=date(2026, 11, 20))
    t = time.perf_counter()
    result = generate(config, home / "landing")
    secs = time.perf_counter() - t
    size = sum(p.stat().st_size for p in result.files)
    report(
        "generation",
        tenants=a.tenants,
        events=result.events,
        seconds=round(secs, 2),
        events_per_second=round(result.events / secs),
        landing_mb=round(size / 1e6),
    )
    shutil.rmtree(home)
