"""Whole-history candidates on one tenant: `score_candidates` alone, on the inputs dbt hands it.

Builds one generated tenant's warehouse up to `int_recommendation_candidates__history` (dbt, as
the features DAG does), then reads that model's three inputs exactly as the Python model does
(`int_recommendation_candidates__as_of`, the daily interactions of `stg_lake__events`,
`int_items__catalogued`) and times `ml.models.recsys.candidates.score_candidates` on them, best of
`--repeats`. Reports the dbt nodes' own times for the history model and the SQL sources too.
`--profile` prints cProfile's top functions by own time (where the next second hides).

`--warehouse` times an existing warehouse's tenant instead (a `clicks_burst.py --until features` home's
`warehouse/region=eu/pool.duckdb`, say): one cutoff's families fitted (`fit_cutoff`) and a share of its users scored
as one of the dbt model's parts (`score_part`: the users whose `hash(user_id) % --share` is 0).

    .venv/bin/python benchmarks/history_candidates.py --users 17000 --items 1500 --days 14
    .venv/bin/python benchmarks/history_candidates.py --users 17000 --profile
    .venv/bin/python benchmarks/history_candidates.py --warehouse <home>/warehouse/region=eu/pool.duckdb --tenant shop
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import yaml
from _common import fresh_home, register_fleet, report

from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect, warehouses
from ml.data import dbt
from ml.data.generate import generate
from ml.data.generate.config import fleet_config
from ml.data.ingest.run import ingest_tenants
from ml.models.recsys.candidates import (
    DAILY_INTERACTIONS_SQL,
    candidates_frame,
    fit_cutoff,
    score_candidates,
    score_part,
)
from ml.models.recsys.served import history_events

END = date(2026, 11, 20)
MODEL = "int_recommendation_candidates__history"
DAILY = f"select * from ({DAILY_INTERACTIONS_SQL.format(events='stg_lake__events')}) where tenant_id = $t"


def inputs(con, tenant: str, where: str = "", **params):
    """The model's inputs for one tenant, as the dbt Python model reads them; ``where`` (``and …``, its ``params``)
    narrows the SQL sources' rows (a cutoff, a part of its users)."""
    # each execute() answers on the connection: fetch before the next query
    sources = con.execute(
        f"select * from int_recommendation_candidates__as_of where tenant_id = $t {where}", {"t": tenant, **params}
    ).df()
    daily = con.execute(DAILY, {"t": tenant}).df()
    catalogue = con.execute(
        "select item_id, published_at from int_items__catalogued where tenant_id = $t", {"t": tenant}
    ).df()
    return sources, daily, catalogue


def one_part(path: str, tenant: str, cutoff_at: int, share: int, per_user: int, out_path: str | None = None) -> None:
    """Time the dbt model's work on one cutoff of an existing warehouse: the fit, then one part of its users
    (``out_path``: its rows written as Parquet too, to compare two versions' outputs)."""
    con = connect(Path(path), read_only=True)
    counts = con.execute(
        "select cutoff_date, count(*) from int_recommendation_candidates__as_of where tenant_id = $t group by 1 "
        "order by 1",
        {"t": tenant},
    ).fetchall()
    cutoff, rows = counts[cutoff_at]
    part, daily, catalogue = inputs(
        con, tenant, "and cutoff_date = $c and hash(user_id) % $share = 0", c=cutoff, share=share
    )
    con.close()
    events = history_events(daily)
    t = time.perf_counter()
    fit = fit_cutoff(tenant, pd.Timestamp(cutoff), events, catalogue)
    fitted = time.perf_counter() - t
    t = time.perf_counter()
    out = candidates_frame(tenant, [score_part(fit, part, per_user, exclude_seen=True)])
    scored = time.perf_counter() - t
    if out_path:
        out.to_parquet(out_path)
    report(
        "history_candidates_part",
        warehouse=path,
        tenant=tenant,
        cutoff=str(cutoff),
        cutoff_rows=rows,
        share=share,
        part_rows=len(part),
        rows_out=len(out),
        items=len(fit.data.items) if fit.data is not None else 0,
        fit_seconds=round(fitted, 1),
        score_part_seconds=round(scored, 1),
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=17000)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the home (its warehouse) and print its path")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top 25 functions by own time")
    ap.add_argument("--warehouse", help="an existing warehouse file: time one part of one cutoff of --tenant there")
    ap.add_argument("--tenant", default="shop")
    ap.add_argument("--cutoff", type=int, default=-1, help="which cutoff, by position (-1: the serving cutoff)")
    ap.add_argument("--share", type=int, default=4, help="score the users whose hash(user_id) %% SHARE is 0")
    ap.add_argument("--out", help="with --warehouse: write the part's rows to this Parquet file")
    a = ap.parse_args()
    if a.warehouse:
        project = yaml.safe_load((get_settings().dbt_project_dir / "dbt_project.yml").read_text())
        one_part(a.warehouse, a.tenant, a.cutoff, a.share, int(project["vars"]["candidates_history"]), a.out)
        raise SystemExit
    home = fresh_home("history")
    settings = get_settings()
    config = fleet_config(1, a.users, a.items, a.days, seed=1, end_date=END, regions=("eu",))
    register_fleet(settings, config)
    generated = generate(config, settings.stores.landing.root)
    tenant = config.tenants[0].tenant_id
    ingest_tenants([tenant], config.start_date, END + timedelta(days=1), settings)
    wh = warehouses(TenantStore(settings).list())[0]
    variables = dbt.dbt_vars(settings, wh)
    run = dbt.run_dbt(["run", "--full-refresh", "--select", f"+{MODEL}"], settings, wh, variables)
    nodes = {n["node"].split(".")[-1]: n["seconds"] for n in run["nodes"]}

    con = connect(wh.path(settings), read_only=True)
    sources, daily, catalogue = inputs(con, tenant)
    con.close()
    exclude_seen = tenant not in variables["repeat_tenants"]
    project = yaml.safe_load((settings.dbt_project_dir / "dbt_project.yml").read_text())
    per_user = int(project["vars"]["candidates_history"])

    def once():
        return score_candidates(sources, daily, per_user=per_user, exclude_seen=exclude_seen, catalogue=catalogue)

    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        out = once()
        times.append(round(time.perf_counter() - t, 2))
    if a.profile:
        profiler = cProfile.Profile()
        profiler.runcall(once)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue())
    report(
        "history_candidates",
        users=a.users,
        items=a.items,
        days=a.days,
        events=generated.events,
        cutoffs=int(sources["cutoff_date"].nunique()),
        sql_candidates=len(sources),
        rows_out=len(out),
        history_candidates=int(out["is_history_candidate"].sum()),
        score_candidates_seconds=min(times),
        score_candidates_runs=times,
        dbt_history_node_seconds=nodes.get(MODEL),
        dbt_as_of_node_seconds=nodes.get("int_recommendation_candidates__as_of"),
    )
    if a.keep:
        print(f"kept {home}: TENANTFLOW_HOME={home}")
    else:
        shutil.rmtree(home)
