"""User features three ways on the same lake: dbt-duckdb, pandas, one hand-written DuckDB query.

All three compute the serving-cutoff user features of `marts/user_features` (activity over the
last day and the short and long windows, engagement, recency, sessions, tenure) for every tenant
of one warehouse, from the lake's Parquet, and the outputs are checked equal before any figure is
reported. The generator's tenants come back daily, so dbt gives them windows of 7 and 28 days
(`int_tenant_windows`), which the pandas and hand-written engines hard-code.

    .venv/bin/python benchmarks/user_features_engines.py --tenants 10 --users 14000 --days 30
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
from _common import fresh_home, register_fleet, report

from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect, warehouses
from ml.data import dbt
from ml.data.generate import generate
from ml.data.generate.config import fleet_config

END = date(2026, 11, 20)
FEATURES = [
    "events_1d",
    "events_short",
    "events_long",
    "clicks_short",
    "clicks_long",
    "completes_long",
    "likes_long",
    "completion_rate_long",
    "avg_dwell_seconds_long",
    "sessions_short",
    "sessions_long",
    "events_per_session_long",
    "active_days_long",
    "days_since_last_activity",
    "tenure_days",
    "activity_trend_short_vs_long",
]
DBT_MODELS = [
    "stg_lake__events",
    "int_user_activity__daily",
    "int_feature_cutoffs",
    "int_user_features__as_of",
    "user_features",
]


def with_pandas(paths: list[str]) -> pd.DataFrame:
    cols = ["tenant_id", "user_id", "event_type", "event_at", "session_id", "dwell_seconds"]
    ev = pd.concat([pd.read_parquet(p, columns=cols) for p in paths], ignore_index=True)
    ev = ev[ev.user_id.notna() & (ev.event_type != "item_published")]
    ev["d"] = ev.event_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    t = ev.event_type
    ev = ev.assign(
        click=t.eq("click"),
        view=t.eq("view"),
        complete=t.eq("complete"),
        skip=t.eq("skip"),
        like=t.eq("like"),
        cancel=t.eq("cancel_subscription"),
        vdwell=np.where(t.eq("view"), ev.dwell_seconds.fillna(0), 0.0),
    )
    daily = (
        ev.groupby(["tenant_id", "user_id", "d"], sort=False)
        .agg(
            events=("event_type", "size"),
            clicks=("click", "sum"),
            views=("view", "sum"),
            completes=("complete", "sum"),
            skips=("skip", "sum"),
            likes=("like", "sum"),
            dwell=("vdwell", "sum"),
            sessions=("session_id", "nunique"),
            cancelled=("cancel", "any"),
        )
        .reset_index()
    )
    cutoff = daily.groupby("tenant_id").d.max() + pd.Timedelta(days=1)
    daily["c"] = daily.tenant_id.map(cutoff)
    life = daily.groupby(["tenant_id", "user_id"]).agg(first=("d", "min"))
    life["cancelled_on"] = daily[daily.cancelled].groupby(["tenant_id", "user_id"]).d.min()
    w = daily[(daily.d < daily.c) & (daily.d >= daily.c - pd.Timedelta(days=28))].copy()
    age = (w.c - w.d).dt.days
    for col in ("events", "clicks", "sessions"):
        w[f"{col}_7"] = np.where(age <= 7, w[col], 0)
    w["events_1"] = np.where(age <= 1, w.events, 0)
    g = (
        w.groupby(["tenant_id", "user_id"])
        .agg(
            c=("c", "first"),
            events_1d=("events_1", "sum"),
            events_short=("events_7", "sum"),
            events_long=("events", "sum"),
            clicks_short=("clicks_7", "sum"),
            clicks_long=("clicks", "sum"),
            completes_long=("completes", "sum"),
            skips=("skips", "sum"),
            likes_long=("likes", "sum"),
            dwell=("dwell", "sum"),
            views=("views", "sum"),
            sessions_short=("sessions_7", "sum"),
            sessions_long=("sessions", "sum"),
            active_days_long=("d", "size"),
            last=("d", "max"),
        )
        .join(life)
    )
    g = g[g.cancelled_on.isna() | (g.cancelled_on >= g.c)]
    g["completion_rate_long"] = g.completes_long / (g.completes_long + g.skips).replace(0, np.nan)
    g["avg_dwell_seconds_long"] = g.dwell / g.views.replace(0, np.nan)
    g["events_per_session_long"] = g.events_long / g.sessions_long.replace(0, np.nan)
    g["days_since_last_activity"] = (g.c - g["last"]).dt.days
    g["tenure_days"] = (g.c - g["first"]).dt.days
    g["activity_trend_short_vs_long"] = g.events_short / (g.events_long / 4.0)
    return g.reset_index()[["tenant_id", "user_id", *FEATURES]]


HAND_SQL = """
with ev as (
    select tenant_id, user_id, event_type, cast(event_at as date) as d, session_id, dwell_seconds
    from read_parquet({paths}) where user_id is not null and event_type <> 'item_published'
), daily as (
    select tenant_id, user_id, d, count(*) as events, count(*) filter (event_type = 'click') as clicks,
           count(*) filter (event_type = 'view') as views, count(*) filter (event_type = 'complete') as completes,
           count(*) filter (event_type = 'skip') as skips, count(*) filter (event_type = 'like') as likes,
           coalesce(sum(dwell_seconds) filter (event_type = 'view'), 0) as dwell,
           count(distinct session_id) as sessions, bool_or(event_type = 'cancel_subscription') as cancelled
    from ev group by all
), c as (select tenant_id, max(d) + 1 as c from daily group by all),
life as (select tenant_id, user_id, min(d) as first_d, min(d) filter (cancelled) as cancelled_on from daily group by all)
select w.tenant_id, w.user_id,
    coalesce(sum(events) filter (d >= c.c - 1), 0) as events_1d, coalesce(sum(events) filter (d >= c.c - 7), 0) as events_short,
    sum(events) as events_long, coalesce(sum(clicks) filter (d >= c.c - 7), 0) as clicks_short, sum(clicks) as clicks_long,
    sum(completes) as completes_long, sum(likes) as likes_long,
    sum(completes) / nullif(sum(completes) + sum(skips), 0) as completion_rate_long,
    sum(dwell) / nullif(sum(views), 0) as avg_dwell_seconds_long,
    coalesce(sum(sessions) filter (d >= c.c - 7), 0) as sessions_short, sum(sessions) as sessions_long,
    sum(events) / nullif(sum(sessions), 0) as events_per_session_long, count(*) as active_days_long,
    any_value(c.c) - max(d) as days_since_last_activity, any_value(c.c) - any_value(life.first_d) as tenure_days,
    coalesce(sum(events) filter (d >= c.c - 7), 0) / (sum(events) / 4.0) as activity_trend_short_vs_long
from daily w join c using (tenant_id) join life using (tenant_id, user_id)
where d < c.c and d >= c.c - 28 and (life.cancelled_on is null or life.cancelled_on >= c.c)
group by w.tenant_id, w.user_id
"""


def assert_same(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    a = a.sort_values(["tenant_id", "user_id"]).reset_index(drop=True)
    b = b.sort_values(["tenant_id", "user_id"]).reset_index(drop=True)
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} rows"
    assert (a.user_id == b.user_id).all(), what
    for f in FEATURES:
        x, y = a[f].astype(float).to_numpy(), b[f].astype(float).to_numpy()
        assert np.allclose(x, y, equal_nan=True), f"{what}: column {f} differs"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--users", type=int, default=14000)
    ap.add_argument("--days", type=int, default=30)
    a = ap.parse_args()
    home = fresh_home("engines")
    settings = get_settings()
    config = fleet_config(a.tenants, a.users, 1500, a.days, seed=2, end_date=END, regions=("eu",))
    register_fleet(settings, config)
    result = generate(config, settings.stores.landing.root)
    from ml.data.ingest.run import ingest_tenants

    ingest_tenants([s.tenant_id for s in config.tenants], config.start_date, END + timedelta(days=1), settings)
    wh = warehouses(TenantStore(settings).list())[0]
    # the serving cutoff only, like the others: cutoffs a century apart fall before the first event
    v = {**dbt.dbt_vars(settings, wh), "training_cutoffs": 0, "training_cutoff_every_days": 36500}
    paths = v["lake_paths"]

    t = time.perf_counter()
    run = dbt.run_dbt(["run", "--full-refresh", "--select", *DBT_MODELS], settings, wh, v)
    dbt_wall = time.perf_counter() - t
    dbt_models = sum(n["seconds"] for n in run["nodes"])
    # The same run as the features DAG's task makes it: a fresh process (imports dbt again) and
    # dbt's partial parsing, since the first run above left its manifest in the target folder.
    task = (
        "import json, sys; from ml.core.settings import get_settings; from ml.core.tenants import TenantStore; "
        "from ml.core.warehouse import warehouses; from ml.data import dbt; s = get_settings(); "
        "wh = warehouses(TenantStore(s).list())[0]; "
        "dbt.run_dbt(['run', '--full-refresh', '--select', *sys.argv[2:]], s, wh, json.loads(sys.argv[1]))"
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", task, json.dumps(v), *DBT_MODELS], check=True, capture_output=True)
    dbt_task_wall = time.perf_counter() - t
    con = connect(wh.path(settings), read_only=True)
    via_dbt = con.execute("select * from user_features").df()
    con.close()

    t = time.perf_counter()
    via_pandas = with_pandas(sorted(p for g in paths for p in map(str, __import__("glob").glob(g))))
    pandas_s = time.perf_counter() - t

    t = time.perf_counter()
    via_sql = duckdb.connect().execute(HAND_SQL.format(paths=paths)).df()
    sql_s = time.perf_counter() - t

    assert_same(via_dbt, via_pandas, "dbt vs pandas")
    assert_same(via_dbt, via_sql, "dbt vs hand-written DuckDB")
    report(
        "user_features_engines",
        tenants=a.tenants,
        events=result.events,
        users=len(via_dbt),
        dbt_wall_seconds=round(dbt_wall, 2),
        dbt_model_seconds=round(dbt_models, 2),
        dbt_task_wall_seconds=round(dbt_task_wall, 2),
        pandas_seconds=round(pandas_s, 2),
        duckdb_query_seconds=round(sql_s, 2),
        pandas_over_dbt_models=round(pandas_s / dbt_models, 2),
        dbt_models_over_floor=round(dbt_models / sql_s, 2),
        pandas_over_dbt_wall=round(pandas_s / dbt_wall, 2),
        dbt_wall_over_floor=round(dbt_wall / sql_s, 2),
        pandas_over_dbt_task_wall=round(pandas_s / dbt_task_wall, 2),
        dbt_task_wall_over_floor=round(dbt_task_wall / sql_s, 2),
    )
    shutil.rmtree(home)
