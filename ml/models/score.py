"""Batch scoring: each tenant's champions score its users into the tenant's warehouse.

One table per model kind in the warehouse's ``predictions`` schema (each kind's
``predictions_table``, e.g. ``predictions.recommendations``, declared as dbt sources so analytics
engineers can build on them), every row tagged with the model
name and version that made it. A run replaces the rows of (tenant, as-of date), so re-running a
day gives the same rows, never duplicates. Models are loaded from MLflow before the warehouse lock
is taken; the lock is held only while reading features and writing predictions.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import Warehouse, connect, warehouse_jobs, warehouse_lock
from ml.models.champion import Champion, load_champion
from ml.models.kinds import kinds_of
from ml.models.kinds.base import ModelKind

log = logging.getLogger(__name__)

TOP_K = 10


def plan(tenant_ids: list[str] | None, k: int = TOP_K, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The ``score`` DAG's mapped work: one job per warehouse file of the named tenants (or all).

    Raises:
        TenantError: a named tenant is unknown.
    """
    tenants = TenantStore(settings).select(tenant_ids or None)
    return warehouse_jobs(tenants, named=bool(tenant_ids), k=k)


def score_warehouse(
    wh: Warehouse, settings: Settings | None = None, tenants: list[str] | None = None, k: int = TOP_K
) -> dict[str, Any]:
    """Score every tenant of one warehouse (or the named ones) with its champion of each kind it uses.

    Returns ``{"warehouse", "tenants": {tenant: {kind: {"rows", "users", "as_of", "model_version"}}}}``.
    """
    settings = settings or get_settings()
    store = TenantStore(settings)
    wanted = [t for t in wh.tenants if tenants is None or t in tenants]
    models: dict[tuple[str, str], tuple[ModelKind, Champion]] = {}
    for tid in wanted:
        for kind in kinds_of(store.get(tid)):
            champ = load_champion(kind.name, tid, settings)
            if champ is not None:
                models[(tid, kind.name)] = (kind, champ)
    out: dict[str, dict[str, Any]] = {tid: {} for tid in wanted}
    path = wh.path(settings)
    if not path.exists() or not models:
        return {"warehouse": wh.key, "tenants": out}
    with warehouse_lock(path):
        con = connect(path)
        try:
            con.execute("create schema if not exists predictions")
            for (tid, kind_name), (kind, champ) in sorted(models.items()):
                out[tid][kind_name] = _score(con, tid, kind, champ, k)
        finally:
            con.close()
    return {"warehouse": wh.key, "tenants": out}


def _score(con: Any, tenant_id: str, kind: ModelKind, champ: Champion, k: int) -> dict[str, Any]:
    """Replace one tenant's rows of one kind's predictions table at its serving cutoff."""
    t0 = time.perf_counter()
    frame = con.execute(f"select * from {kind.serving_mart} where tenant_id = ?", [tenant_id]).df()
    if frame.empty:
        return {"rows": 0, "model_version": champ.number}
    scores = champ.booster.predict(kind.matrix(frame, champ.features), num_threads=1)
    meta = {
        "model_name": champ.name,
        "model_version": champ.number,
        "trained_on": champ.trained_on,
        "scored_at": pd.Timestamp.now(tz="UTC"),
    }
    rows = kind.prediction_rows(frame, scores, k).assign(**meta)
    as_of = rows["as_of"].iloc[0]
    table = kind.predictions_table
    con.execute(kind.predictions_ddl)
    con.execute("begin")
    con.execute(f"delete from {table} where tenant_id = ? and as_of = ?", [tenant_id, as_of])
    con.register("scored", rows)
    con.execute(f"insert into {table} by name select * from scored")
    con.unregister("scored")
    con.execute("commit")
    log.info("tenant %s: %s v%s scored %d rows", tenant_id, kind.name, champ.number, len(rows))
    return {
        "rows": len(rows),
        "users": int(rows["user_id"].nunique()),
        "as_of": str(pd.Timestamp(as_of).date()),
        "model_version": champ.number,
        "seconds": round(time.perf_counter() - t0, 2),
    }
