"""Batch scoring: each tenant's champion scores its users into the tenant's warehouse.

Two tables in the warehouse's ``predictions`` schema (declared as dbt sources, so analytics
engineers can build on them), every row tagged with the model name and version that made it:

* ``predictions.recommendations``: the top-K items per user at the serving cutoff, from the
  ``ranking_candidates`` mart re-ranked by the ``recommender`` champion;
* ``predictions.churn_scores``: a churn probability per active user from ``user_features``.

A run replaces the rows of (tenant, as-of date), so re-running a day gives the same rows,
never duplicates. Models are loaded from MLflow before the warehouse lock is taken; the lock
is held only while reading features and writing predictions.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd

from ml import registry
from ml.features import Warehouse, warehouse_lock
from ml.kinds import get_kind
from ml.settings import Settings, get_settings

log = logging.getLogger(__name__)

TOP_K = 10

_DDL = """
create schema if not exists predictions;
create table if not exists predictions.recommendations (
    tenant_id varchar not null,
    as_of date not null,
    user_id varchar not null,
    rank integer not null,
    item_id varchar not null,
    score double not null,
    model_name varchar not null,
    model_version varchar not null,
    trained_on varchar not null,
    scored_at timestamptz not null,
    primary key (tenant_id, as_of, user_id, rank)
);
create table if not exists predictions.churn_scores (
    tenant_id varchar not null,
    as_of date not null,
    user_id varchar not null,
    churn_probability double not null,
    model_name varchar not null,
    model_version varchar not null,
    trained_on varchar not null,
    scored_at timestamptz not null,
    primary key (tenant_id, as_of, user_id)
);
"""

_SOURCES = {"recommender": "ranking_candidates", "churn": "user_features"}


def _champion(kind: str, tenant_id: str, settings: Settings):
    """(version, booster, features) of the tenant's champion, or None."""
    from ml.train import load_booster

    name = registry.model_name(kind, tenant_id)
    mv = registry.version_by_alias(name, registry.CHAMPION, settings)
    if mv is None:
        return None
    return mv, load_booster(name, str(mv.version), settings), json.loads(mv.tags["features"])


def score_warehouse(wh: Warehouse, settings: Settings | None = None, tenants: list[str] | None = None, k: int = TOP_K) -> dict:
    """Score every tenant of one warehouse (or the named ones) with its champions."""
    import duckdb

    settings = settings or get_settings()
    wanted = [t for t in wh.tenants if tenants is None or t in tenants]
    models = {}
    for tid in wanted:
        for kind_name in ("recommender", "churn"):
            champ = _champion(kind_name, tid, settings)
            if champ is not None:
                models[(tid, kind_name)] = champ
    out: dict[str, dict] = {tid: {} for tid in wanted}
    path = wh.path(settings)
    if not path.exists() or not models:
        return {"warehouse": wh.key, "tenants": out}
    with warehouse_lock(path):
        con = duckdb.connect(str(path))
        try:
            con.execute(_DDL)
            for (tid, kind_name), (mv, booster, features) in sorted(models.items()):
                t0 = time.perf_counter()
                frame = con.execute(f"select * from {_SOURCES[kind_name]} where tenant_id = ?", [tid]).df()
                if frame.empty:
                    out[tid][kind_name] = {"rows": 0, "model_version": str(mv.version)}
                    continue
                kind = get_kind(kind_name)
                scores = booster.predict(kind.matrix(frame, features), num_threads=1)
                meta = {"model_name": mv.name, "model_version": str(mv.version), "trained_on": mv.tags.get("trained_on", ""),
                        "scored_at": pd.Timestamp.now(tz="UTC")}  # fmt: skip
                if kind_name == "recommender":
                    rows = _top_k(frame, scores, k).assign(**meta)
                    table, cols = "predictions.recommendations", "tenant_id, as_of, user_id, rank, item_id, score"
                else:
                    rows = frame[["tenant_id", "cutoff_date", "user_id"]].rename(columns={"cutoff_date": "as_of"})
                    rows = rows.assign(churn_probability=scores, **meta)
                    table, cols = "predictions.churn_scores", "tenant_id, as_of, user_id, churn_probability"
                as_of = rows["as_of"].iloc[0]
                con.execute("begin")
                con.execute(f"delete from {table} where tenant_id = ? and as_of = ?", [tid, as_of])
                con.register("scored", rows)
                con.execute(f"insert into {table} select {cols}, model_name, model_version, trained_on, scored_at from scored")
                con.unregister("scored")
                con.execute("commit")
                out[tid][kind_name] = {"rows": len(rows), "users": int(rows["user_id"].nunique()), "as_of": str(pd.Timestamp(as_of).date()),
                                       "model_version": str(mv.version), "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
                log.info("tenant %s: %s v%s scored %d rows", tid, kind_name, str(mv.version), len(rows))
        finally:
            con.close()
    return {"warehouse": wh.key, "tenants": out}


def _top_k(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    df = pd.DataFrame({"tenant_id": frame["tenant_id"].to_numpy(), "as_of": frame["cutoff_date"].to_numpy(),
                       "user_id": frame["user_id"].to_numpy(), "item_id": frame["item_id"].to_numpy(),
                       "score": scores})  # fmt: skip
    df = df.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="mergesort")
    df["rank"] = df.groupby("user_id", sort=False).cumcount() + 1
    return df[df["rank"] <= k][["tenant_id", "as_of", "user_id", "rank", "item_id", "score"]]
