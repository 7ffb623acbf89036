"""Recommendation quality on real and generated tenants, side by side in one run (issue 14, point 9).

Every tenant's interactions are read from the product's lake after ingestion (Online Retail:
`tenantflow import` of every country with at least --min-customers customers, the onboarding of
examples/online-retail/; the demo fleet: the generator's first training window, ingested), then
scored under both protocols of `ml.models.evaluate`:

- temporal: the last --test-days days are the test window, every user active in it is evaluated;
- random: 75/25 of each user's (user, item) pairs, seed 42 (the recommenders benchmark's split).

Families (`ml.models.recsys`): popularity (all time and the last 7 days), item-kNN, SAR, EASE,
implicit ALS; each with nDCG@10, P@10, R@10, MAP@10, HitRate@10, catalogue coverage and
training time, and a 95% bootstrap interval on nDCG@10. Items seen in training are excluded
(the default seen-items policy) unless --allow-repeats.

With --product the tenants then go through the product: dbt features, snapshots, the global and
each tenant's recommender training (`ml.models.train`), whose competition holdout is the
temporal protocol at the product's label window (7 days before the serving cutoff). Its rows
(protocol `product`) are every candidate of that competition, the registered winner marked
`served`: what batch scoring and the API then serve.

    .venv/bin/python benchmarks/quality.py                      # both fleets
    .venv/bin/python benchmarks/quality.py --fleet retail --test-days 28
    .venv/bin/python benchmarks/quality.py --product          # and the product's own competition

With --product-random the served lists are also scored under the random protocol: each tenant's
lake, without every event of the held-out 25% of its (user, item) pairs (the split above), is
imported into a second home (`import_history`, the landing contract), built, trained and
batch-scored by the product, and its `predictions.recommendations` are scored on the held-out
pairs beside the families' rows (protocol `random`, family `served (...)`). --holdout-protocol
sets the tenants' `holdout_protocol` there (`auto` by default; `random`: the tenant chose the
protocol it is scored by). A judged user without a batch list gets the tenant's cold-start list, as
the API answers them (rows before 2026-12-03 left such users without a list).

    .venv/bin/python benchmarks/quality.py --fleet retail --product-random [--holdout-protocol random]

With --product-forward the served lists are also scored under the temporal protocol: each tenant's
lake before the test window goes through the product in a new home (built, trained, batch-scored)
and its `predictions.recommendations` are scored on the test window beside the families' temporal
rows. It does so twice, the learnt winner served as its holdout judged it (`TENANTFLOW_TRAIN_REFIT=false`)
and refitted on the newest labelled cutoffs (`ml.models.refit`, the default), with the paired
bootstrap of the difference (`vs_judged`): what the refit gains, which the product's holdout cannot show.

    .venv/bin/python benchmarks/quality.py --fleet retail --product-forward [--end-before 2011-10-17]

--end-before ends every tenant's data the day before a date, for an earlier test window (the
side-by-side rows and --product-forward).

Reads Online Retail from ../shared/datasets/online-retail/ (or $TENANTFLOW_DATASETS); never copies it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_home, register_fleet, report

from ml.core.contract import INTERACTION_EVENT_TYPES
from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect
from ml.models import evaluate, recsys
from tests import online_retail as retail

K = evaluate.K


def families(threads: int) -> list[recsys.Recommender]:
    return [
        recsys.Popularity(),
        recsys.Popularity(window_days=7),
        recsys.ItemKNN(neighbours=100),
        recsys.SAR("jaccard", half_life_days=30.0),
        recsys.EASE(l2=500.0),
        recsys.ALS(factors=128, l2=100.0, alpha=10.0, iterations=15, threads=threads),
    ]


def lake_events(settings: Settings, region: str, tenant_id: str, end: str | None = None) -> pd.DataFrame:
    """The tenant's interaction events (its interaction types, as the warehouse counts them: a
    registered tenant's own, else the platform's) from its lake; with ``end`` (a date,
    ``YYYY-MM-DD``) only those before its UTC midnight. (A ``min_rating`` is not applied.)"""
    glob = settings.stores.lake.glob(region, tenant_id, "*.parquet")
    known = {t.tenant_id: t for t in TenantStore(settings).list()}
    types = ", ".join(
        f"'{t}'" for t in (known[tenant_id].interactions if tenant_id in known else INTERACTION_EVENT_TYPES)
    )
    before = f" and event_at < '{end}'" if end else ""
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.sql(
            f"select user_id, item_id, event_at from read_parquet('{glob}') "
            f"where event_type in ({types}) and user_id is not null and item_id is not null{before}"
        ).df()


def retail_fleet(min_customers: int) -> list[tuple[str, str]]:
    files = retail.day_files()
    if not files:
        sys.exit(f"skipped: {retail.ABSENT}")
    with duckdb.connect() as con:
        big = {
            c
            for (c,) in con.sql(
                f"select Country from {retail._read(files)} where CustomerID is not null "
                f"group by Country having count(distinct CustomerID) >= {min_customers}"
            ).fetchall()
        }
    tenants = [t for t in retail.fleet(files) if t["country"] in big]
    retail.onboard(tenants)
    retail.import_fleet(get_settings(), tenants, files)
    return [(t["region"], t["tenant_id"]) for t in tenants]


def demo_fleet() -> list[tuple[str, str]]:
    from ml.data.generate import generate
    from ml.data.generate.config import DEMO_TRAINED_DAYS, demo_config
    from ml.data.ingest.run import ingest_tenants

    settings = get_settings()
    config, _ = demo_config()
    register_fleet(settings, config)
    generate(replace(config, land_days=(0, DEMO_TRAINED_DAYS)), settings.stores.landing.root)
    ids = [s.tenant_id for s in config.tenants]
    ingest_tenants(ids, config.start_date, config.start_date + timedelta(days=DEMO_TRAINED_DAYS))
    return [(s.region, s.tenant_id) for s in config.tenants]


def split(events: pd.DataFrame, protocol: str, test_days: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """(training events, test (user, item) pairs, as_of) under one protocol."""
    events = events.assign(event_at=pd.to_datetime(events["event_at"], utc=True))
    if protocol == "temporal":
        train, test = evaluate.temporal_split(events, test_days)
        as_of = test["event_at"].min().normalize() if len(test) else events["event_at"].max()
        return train, test[["user_id", "item_id"]].drop_duplicates(), as_of
    train_pairs, test_pairs = random_pairs(events)
    train = events.merge(train_pairs[["user_id", "item_id"]], on=["user_id", "item_id"])
    as_of = events["event_at"].max().normalize() + pd.Timedelta(days=1)
    return train, test_pairs[["user_id", "item_id"]], as_of


def random_pairs(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, test) (user, item) pairs: 75/25 of each user's distinct pairs, seed 42."""
    pairs = events.groupby(["user_id", "item_id"], as_index=False)["event_at"].min()
    return evaluate.stratified_random_split(pairs, 0.75, seed=42)


def judged_pairs(events: pd.DataFrame, protocol: str, test_days: int, allow_repeats: bool):
    """(training interactions, the test pairs a family could find, users to judge, as_of)."""
    train, test, as_of = split(events, protocol, test_days)
    data = recsys.Interactions.from_events(train, as_of)
    if not allow_repeats:
        seen = pd.DataFrame({"user_id": data.users[data.user], "item_id": data.items[data.item]}).drop_duplicates()
        test = test.merge(seen, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
    test = test[test["item_id"].isin(set(data.items))]  # an item new in the test window is nobody's to find
    return data, test, np.sort(test["user_id"].astype(str).unique()), train


def score_tenant(
    tenant_id: str, events: pd.DataFrame, protocol: str, test_days: int, allow_repeats: bool, threads: int
) -> list[dict]:
    data, test, users, train = judged_pairs(events, protocol, test_days, allow_repeats)
    rows = []
    for model in families(threads):
        started = time.perf_counter()
        try:
            model.fit(data)
        except ValueError as e:
            rows.append({"tenant_id": tenant_id, "protocol": protocol, "family": model.name, "skipped": str(e)})
            continue
        fit_seconds = time.perf_counter() - started
        lists = recsys.recommend(model, data, users, K, exclude_seen=not allow_repeats)
        ev = evaluate.evaluate_lists(lists, test, K, len(data.items))
        low, high = evaluate.bootstrap_interval(ev.per_user["ndcg"].to_numpy())
        rows.append(
            {
                "tenant_id": tenant_id,
                "protocol": protocol,
                "family": model.name,
                **{m: round(v, 4) for m, v in ev.metrics().items() if m != "users"},
                "ndcg_at_10_low": round(low, 4),
                "ndcg_at_10_high": round(high, 4),
                "users": len(users),
                "known_users": int((data.rows(users) >= 0).sum()),
                "items": len(data.items),
                "train_events": len(train),
                "fit_seconds": round(fit_seconds, 2),
                "recommend_seconds": round(time.perf_counter() - started - fit_seconds, 2),
            }
        )
    return rows


def product_rows(members: list[tuple[str, str]]) -> list[dict]:
    """Build features, snapshot and train the recommender for every member; each candidate's holdout metrics."""
    from ml.models import registry
    from ml.models.train import train_tenant

    settings = get_settings()
    _features_and_global_model(settings)
    c = registry.client(settings)
    rows = []
    for _, tenant_id in members:
        started = time.perf_counter()
        r = train_tenant("recommender", tenant_id, "benchmark", settings)
        seconds = time.perf_counter() - started
        if "skipped" in r:
            rows.append({"tenant_id": tenant_id, "protocol": "product", "family": "-", "skipped": r["skipped"]})
            continue
        run = c.get_run(r["run_id"])
        m, chosen = run.data.metrics, run.data.params.get("chosen", "")
        for key, value in sorted(m.items()):
            if key.startswith("candidate.") and key.endswith(".ndcg_at_10"):
                label = key.split(".")[1]
                rows.append(
                    {"tenant_id": tenant_id, "protocol": "product", "family": label, "ndcg_at_10": round(value, 4)}
                )
        rows.append(
            {
                "tenant_id": tenant_id,
                "protocol": "product",
                "family": f"served ({r['family'] if r['family'] != 'lightgbm' else r['trained_on']})",
                **{k: round(v, 4) for k, v in m.items() if k.endswith("_at_10") or k in ("candidate_recall", "users")},
                "promoted": r["promoted"],
                "chosen": chosen,
                "holdout_protocol": run.data.params.get("holdout_protocol"),
                "temporal_judged_share": run.data.params.get("temporal_judged_share"),
                "train_seconds": round(seconds, 1),
            }
        )
    return rows


def _served_home(
    members: list[tuple[str, str]], name: str, lakes: dict[str, pd.DataFrame], holdout_protocol: str = "auto"
) -> tuple[Path, dict[str, dict], pd.DataFrame]:
    """Import each member's ``lakes`` rows (the landing contract) into a new home, then build, train
    the recommender and batch-score it there: (home, each tenant's training outcome, the served
    lists ``tenant_id, user_id, item_id, rank``, and each tenant's cold-start list, ``user_id`` null:
    what the API answers a user without a batch list)."""
    from ml.core.warehouse import warehouses
    from ml.data.ingest.history import import_history
    from ml.models.score import score_warehouse
    from ml.models.train import train_tenant

    registered = {t.tenant_id: t for t in TenantStore(get_settings()).list()}
    home = fresh_home(name)
    settings = get_settings()
    store = TenantStore(settings)
    for _, tid in members:
        path = home / f"{tid}.parquet"
        lakes[tid].to_parquet(path, index=False)
        store.add(replace(registered[tid], holdout_protocol=holdout_protocol))
        import_history(settings, store.get(tid), [path])
        path.unlink()
    _features_and_global_model(settings)
    results = {tid: train_tenant("recommender", tid, "benchmark", settings) for _, tid in members}
    served = []
    for wh in warehouses(store.list()):
        score_warehouse(wh, settings)
        with connect(wh.path(settings), read_only=True) as con:  # a silo's file is encrypted
            served.append(con.sql("select tenant_id, user_id, item_id, rank from predictions.recommendations").df())
            served.append(
                con.sql(
                    f"select tenant_id, null as user_id, item_id, list_rank as rank from cold_start_items "
                    f"where list_kind = 'popular' and list_rank <= {K}"
                ).df()
            )
    return home, results, pd.concat(served, ignore_index=True)


def _served_row(
    tid: str, protocol: str, lists: pd.DataFrame, data, test: pd.DataFrame, users: np.ndarray, result: dict, home: Path
) -> tuple[dict, np.ndarray]:
    """The served lists of ``tid`` scored on ``test`` (the row, and its per-user nDCG@10); a judged
    user without a batch list gets the tenant's cold-start list, as the API answers them."""
    from ml.models import registry

    mine = lists[(lists["tenant_id"] == tid) & lists["user_id"].notna()]
    cold = lists[(lists["tenant_id"] == tid) & lists["user_id"].isna()]
    listless = np.setdiff1d(users, mine["user_id"].astype(str).unique())
    filled = cold.merge(pd.DataFrame({"user_id": listless}), how="cross", suffixes=("_", ""))
    ev_lists = pd.concat([mine, filled[["tenant_id", "user_id", "item_id", "rank"]]], ignore_index=True)
    ev = evaluate.evaluate_lists(ev_lists, test, K, len(data.items))
    low, high = evaluate.bootstrap_interval(ev.per_user["ndcg"].to_numpy())
    label = result.get("family") if result.get("family") not in (None, "lightgbm") else result.get("trained_on")
    params = registry.client(get_settings()).get_run(result["run_id"]).data.params if "run_id" in result else {}
    row = {
        "tenant_id": tid,
        "protocol": protocol,
        "family": f"served ({label})",
        **{m: round(v, 4) for m, v in ev.metrics().items() if m != "users"},
        "ndcg_at_10_low": round(low, 4),
        "ndcg_at_10_high": round(high, 4),
        "users": len(users),
        "known_users": int(pd.Series(users).isin(mine["user_id"]).sum()),  # judged users with a list
        "holdout_protocol": params.get("holdout_protocol"),
        "temporal_judged_share": params.get("temporal_judged_share"),
        "home": str(home),
    }
    return row, ev.per_user["ndcg"].to_numpy()


def product_random_rows(
    members: list[tuple[str, str]], fleet: str, allow_repeats: bool, holdout_protocol: str = "auto"
) -> list[dict]:
    """The served lists under the random protocol (module docstring): one row per tenant, each
    registered in the second home with ``holdout_protocol`` (the tenant setting)."""
    first = get_settings()
    interactions = {tid: lake_events(first, region, tid) for region, tid in members}
    lakes = {}
    for region, tid in members:
        rows, out = _lake_rows(first, region, tid), random_pairs(interactions[tid])[1]
        key = rows["user_id"].astype(str) + "\x1f" + rows["item_id"].astype(str)
        gone = set(out["user_id"].astype(str) + "\x1f" + out["item_id"].astype(str))
        lakes[tid] = rows[~key.isin(gone).to_numpy()]
    home, results, lists = _served_home(members, f"quality-{fleet}-random", lakes, holdout_protocol)
    rows = []
    for _, tid in members:
        data, test, users, _ = judged_pairs(interactions[tid], "random", 0, allow_repeats)
        rows.append(_served_row(tid, "random", lists, data, test, users, results[tid], home)[0])
    return rows


def product_forward_rows(
    members: list[tuple[str, str]], fleet: str, test_days: int, allow_repeats: bool, threads: int, end: str | None
) -> list[dict]:
    """The served lists under the temporal protocol, the refit's figure (``ml.models.refit``): each
    tenant's lake before the test window (the families' temporal split) goes through the product
    twice, the learnt winner served as the holdout judged it (``TENANTFLOW_TRAIN_REFIT=false``) and
    refitted on the newest labelled cutoffs; both are scored on the test window's users, with the
    paired bootstrap of refitted minus as judged (``vs_judged``). Then every family, its users
    without history given the product's cold-start list (as the served lists are), paired with the
    refitted served lists (``served_minus``: served minus the family). ``end``: the data end the
    day before (``--end-before``), so the test window is the ``test_days`` before it."""
    import os

    first = get_settings()
    interactions = {tid: lake_events(first, region, tid, end) for region, tid in members}
    lakes, judged = {}, {}
    for region, tid in members:
        judged[tid] = judged_pairs(interactions[tid], "temporal", test_days, allow_repeats)
        rows = _lake_rows(first, region, tid)
        as_of = judged[tid][0].as_of  # the test window's first day (UTC midnight)
        lakes[tid] = rows[pd.to_datetime(rows["event_at"], utc=True) < as_of]
    out, per_user, before = [], {}, os.environ.get("TENANTFLOW_TRAIN_REFIT")
    try:
        for refit in (False, True):
            os.environ["TENANTFLOW_TRAIN_REFIT"] = str(refit).lower()
            home, results, lists = _served_home(members, f"quality-{fleet}-forward", dict(lakes))
            for _, tid in members:
                data, test, users, _ = judged[tid]
                row, ndcg = _served_row(tid, "temporal", lists, data, test, users, results[tid], home)
                row["family"] += " refitted" if refit else " as judged"
                if refit and tid in per_user:
                    mean, low, high = evaluate.paired_bootstrap(ndcg, per_user[tid])
                    row |= {
                        "vs_judged": round(mean, 4),
                        "vs_judged_low": round(low, 4),
                        "vs_judged_high": round(high, 4),
                    }
                per_user[tid] = ndcg
                out.append(row)
    finally:
        os.environ.pop("TENANTFLOW_TRAIN_REFIT")
        if before is not None:
            os.environ["TENANTFLOW_TRAIN_REFIT"] = before
    for _, tid in members:
        data, test, users, _ = judged[tid]
        cold = lists[(lists["tenant_id"] == tid) & lists["user_id"].isna()]
        for model in families(threads):
            try:
                recsys.fitted(model, data)
            except ValueError:
                continue
            known = users[data.rows(users) >= 0]
            fam = recsys.recommend(model, data, known, K, exclude_seen=not allow_repeats).assign(tenant_id=tid)
            row, ndcg = _served_row(
                tid, "temporal", pd.concat([fam, cold], ignore_index=True), data, test, users, {}, home
            )
            mean, low, high = evaluate.paired_bootstrap(per_user[tid], ndcg)
            row |= {"family": f"{model.name} + cold start", "holdout_protocol": None, "temporal_judged_share": None}
            row |= {
                "served_minus": round(mean, 4),
                "served_minus_low": round(low, 4),
                "served_minus_high": round(high, 4),
            }
            out.append(row)
    return out


def build_features(settings: Settings) -> None:
    """The product's dbt build, checks and snapshot of every warehouse."""
    from ml.core.warehouse import warehouses
    from ml.data.features import build_and_check_warehouse
    from ml.models.kinds import online_marts
    from ml.models.runs import snapshot_warehouse

    for wh in warehouses(TenantStore(settings).list()):
        build_and_check_warehouse(wh, online_marts(), settings)
        snapshot_warehouse(wh, settings=settings)


def _features_and_global_model(settings: Settings) -> None:
    """:func:`build_features`, then each region's global recommender."""
    from ml.models.runs import global_regions
    from ml.models.train import train_global

    build_features(settings)
    for region in global_regions(TenantStore(settings).list()):
        train_global("recommender", region, "benchmark", settings)


def _lake_rows(settings: Settings, region: str, tenant_id: str) -> pd.DataFrame:
    """Every event of the tenant's lake, in the landing contract's columns."""
    from ml.core.contract import LANDING_COLUMNS

    glob = settings.stores.lake.glob(region, tenant_id, "*.parquet")
    with duckdb.connect() as con:
        return con.sql(f"select {', '.join(LANDING_COLUMNS)} from read_parquet('{glob}')").df()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", choices=["retail", "demo", "both"], default="both")
    ap.add_argument("--min-customers", type=int, default=50)
    ap.add_argument("--test-days", type=int, default=None, help="temporal test window (retail 28, demo 7)")
    ap.add_argument("--allow-repeats", action="store_true", help="the seen-items policy 'allow'")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--holdout-protocol",
        choices=["auto", "temporal", "random"],
        default="auto",
        help="--product-random: the tenants' holdout_protocol setting in the second home",
    )
    ap.add_argument("--product", action="store_true", help="also train through the product and report its competition")
    ap.add_argument(
        "--product-random", action="store_true", help="also score the product's served lists under the random protocol"
    )
    ap.add_argument(
        "--feature-window-days",
        type=int,
        default=None,
        help="set every member's feature window (tenants add --feature-window-days) before the product trains",
    )
    ap.add_argument(
        "--product-forward",
        action="store_true",
        help="also score the product's served lists on the temporal test window, refitted and as judged",
    )
    ap.add_argument("--product-only", action="store_true", help="skip the side-by-side baselines (a window sweep)")
    ap.add_argument(
        "--end-before",
        metavar="YYYY-MM-DD",
        type=date.fromisoformat,
        default=None,
        help="the data end the day before: the temporal test window is the --test-days before it (an earlier "
        "window; the side-by-side rows and --product-forward only)",
    )
    a = ap.parse_args()
    if a.end_before and (a.product or a.product_random):
        ap.error("--end-before applies to the side-by-side rows and --product-forward, not --product/--product-random")
    end = a.end_before.isoformat() if a.end_before else None
    if a.fleet == "both":  # one home (and process) per fleet: their tenants must not train one global model
        for fleet in ("retail", "demo"):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--fleet", fleet], check=True)
        return
    fleet = a.fleet
    home = fresh_home(f"quality-{fleet}")
    settings = get_settings()
    results = []
    members = retail_fleet(a.min_customers) if fleet == "retail" else demo_fleet()
    test_days = a.test_days or (28 if fleet == "retail" else 7)
    if a.feature_window_days is not None:
        store = TenantStore(settings)
        for _, tenant_id in members:
            store.add(replace(store.get(tenant_id), feature_window_days=a.feature_window_days), replace=True)
    for region, tenant_id in members if not a.product_only else []:
        events = lake_events(settings, region, tenant_id, end)
        for protocol in ("temporal", "random"):
            for row in score_tenant(tenant_id, events, protocol, test_days, a.allow_repeats, a.threads):
                row |= {"fleet": fleet, "test_days": test_days if protocol == "temporal" else None}
                results.append(row)
                print(_line(row), flush=True)
    if a.product:
        for row in product_rows(members):
            results.append(row | {"fleet": fleet, "test_days": 7})
            print(_line(row), flush=True)
    if a.product_forward:
        for row in product_forward_rows(members, fleet, test_days, a.allow_repeats, a.threads, end):
            results.append(row | {"fleet": fleet, "test_days": test_days})
            paired = [k for k in ("vs_judged", "served_minus") if k in row]
            print(_line(row), *(f"{k} {row[k]:+.4f} [{row[k + '_low']:+.4f}, {row[k + '_high']:+.4f}]" for k in paired))
    if a.product_random:
        for row in product_random_rows(members, fleet, a.allow_repeats, a.holdout_protocol):
            results.append(row | {"fleet": fleet, "test_days": None})
            print(_line(row), row["holdout_protocol"], row["temporal_judged_share"], flush=True)
    tenants = len(TenantStore().list())
    report("quality", home=str(home), allow_repeats=a.allow_repeats, end_before=end, tenants=tenants, rows=results)


def _line(row: dict) -> str:
    if row["protocol"] == "product" and "skipped" not in row:
        extra = (
            f"  HR {row.get('hit_rate_at_10', float('nan')):.3f}  users {row.get('users', 0):.0f}"
            f" ({row.get('holdout_protocol')}; temporal judged share {row.get('temporal_judged_share')})  {row['chosen']}"
            if "chosen" in row
            else ""
        )
        return (
            f"{row['tenant_id']:>16} {row['protocol']:>8} {row['family']:>14}  "
            f"nDCG@10 {row.get('ndcg_at_10', float('nan')):.4f}{extra}"
        )
    if "skipped" in row:
        return f"{row['tenant_id']:>16} {row['protocol']:>8} {row['family']:>14}  skipped: {row['skipped']}"
    return (
        f"{row['tenant_id']:>16} {row['protocol']:>8} {row['family']:>14}  nDCG@10 {row['ndcg_at_10']:.4f} "
        f"[{row['ndcg_at_10_low']:.4f}, {row['ndcg_at_10_high']:.4f}]  P@10 {row['precision_at_10']:.4f}  "
        f"R@10 {row['recall_at_10']:.4f}  MAP {row['map_at_10']:.4f}  HR {row['hit_rate_at_10']:.3f}  "
        f"cov {row['catalogue_coverage_at_10']:.3f}  users {row['users']} ({row['known_users']} known)  "
        + (f"fit {row['fit_seconds']:.2f}s" if "fit_seconds" in row else "")
    )


if __name__ == "__main__":
    main()
