"""Batch scoring: each tenant's champions score its users into the tenant's warehouse.

One table per model kind in the warehouse's ``predictions`` schema (each kind's
``predictions_table``, e.g. ``predictions.recommendations``, declared as dbt sources so analytics
engineers can build on them), every row tagged with the model
name and version that made it. A run replaces the rows of (tenant, as-of date), so re-running a
day gives the same rows, never duplicates. Models are loaded from MLflow before the warehouse lock
is taken; the lock is held only while reading features and writing predictions. Each tenant's
lineage (the champion version and marts read, the predictions table written) is recorded for the
score DAG's OpenLineage events (:mod:`ml.core.lineage`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core import lineage
from ml.core.settings import Settings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import Warehouse, connect, warehouse_jobs, warehouse_lock
from ml.models.champion import Champion, load_champion
from ml.models.kinds import kinds_of
from ml.models.kinds._windows import tenant_window
from ml.models.kinds.base import ModelKind
from ml.models.recsys import served

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
            for kind in {kind.name: kind for kind, _ in models.values()}.values():
                upgrade_table(con, kind)
            for (tid, kind_name), (kind, champ) in sorted(models.items()):
                out[tid][kind_name] = _score(con, store.get(tid), kind, champ, k)
                if out[tid][kind_name]["rows"]:
                    _record_lineage(path, store.get(tid), kind, champ, settings)
        finally:
            con.close()
    return {"warehouse": wh.key, "tenants": out}


def _record_lineage(path: Path, tenant: Tenant, kind: ModelKind, champ: Champion, settings: Settings) -> None:
    """The champion version and the marts a tenant's predictions were made from (as :func:`_score`
    reads them); the predictions table written (:mod:`ml.core.lineage`)."""
    history = kind.history_mart[0] if kind.history_mart is not None else None
    if champ.recommender is not None and history is not None:
        marts = [history]
    else:
        marts = [kind.serving_mart, *([history] if history and tenant.seen_items == "exclude" else [])]
    region, ids = tenant.region, [tenant.tenant_id]
    model = lineage.model_dataset(settings.mlflow_tracking_uri, champ.name, champ.number, region, ids)
    lineage.record(
        inputs=[model, *(lineage.table_dataset(path, m, region, ids) for m in marts)],
        outputs=[lineage.table_dataset(path, kind.predictions_table, region, ids, layer="predictions")],
    )


def _family_rows(
    con: Any, tenant_id: str, kind: ModelKind, champ: Champion, k: int, exclude_seen: bool
) -> pd.DataFrame:
    """A classic family champion's top ``k`` for every user with history (active or not)."""
    assert kind.history_mart is not None
    history = con.execute(  # ordered: float sums in one order, as the API's published copy
        f"select * from {kind.history_mart[0]} where tenant_id = ? order by user_id, item_id, event_date", [tenant_id]
    ).df()
    if history.empty:
        return pd.DataFrame()
    users = np.sort(history["user_id"].astype(str).unique())
    lists = served.serve_lists(champ.recommender, history, users, k, exclude_seen)
    as_of = pd.Timestamp(history["cutoff_date"].max()).date()
    return lists.assign(tenant_id=tenant_id, as_of=as_of)[["tenant_id", "as_of", "user_id", "rank", "item_id", "score"]]


def _serving_rows(con: Any, tenant_id: str, kind: ModelKind, exclude_seen: bool) -> pd.DataFrame:
    """The kind's serving mart for one tenant; for a kind with a history mart under the seen-items
    policy ``exclude``, without the items each user already consumed."""
    if kind.history_mart is None or not exclude_seen:
        return con.execute(f"select * from {kind.serving_mart} where tenant_id = ?", [tenant_id]).df()
    return con.execute(
        f"select * from {kind.serving_mart} as s where tenant_id = $t and not exists ("
        f"select 1 from {kind.history_mart[0]} as h where h.tenant_id = $t "
        "and h.user_id = s.user_id and h.item_id = s.item_id)",
        {"t": tenant_id},
    ).df()


def _score(con: Any, tenant: Tenant, kind: ModelKind, champ: Champion, k: int) -> dict[str, Any]:
    """Replace one tenant's rows of one kind's predictions table at its serving cutoff."""
    t0 = time.perf_counter()
    tenant_id, exclude_seen = tenant.tenant_id, tenant.seen_items == "exclude"
    if champ.recommender is not None:
        rows = _family_rows(con, tenant_id, kind, champ, k, exclude_seen)
    else:
        frame = _serving_rows(con, tenant_id, kind, exclude_seen)
        if not frame.empty:
            scores = champ.booster.predict(kind.matrix(frame, champ.features), num_threads=1)
            rows = kind.prediction_rows(frame, scores, k)
        else:
            rows = pd.DataFrame()
    if rows.empty:
        return {"rows": 0, "model_version": champ.number}
    meta = {
        # the window the rows predict: the one the champion learned (its label_days tag), else the
        # tenant's for the kind; live metrics judge the batch over it even after the window moves
        "horizon_days": champ.label_days or tenant_window(con, tenant_id, kind.window_column, kind.label_window_days),
        "model_name": champ.name,
        "model_version": champ.number,
        "trained_on": champ.trained_on,
        "scored_at": pd.Timestamp.now(tz="UTC"),
    }
    rows = rows.assign(**meta)
    as_of = rows["as_of"].iloc[0]
    table = kind.predictions_table
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


def upgrade_table(con: Any, kind: ModelKind) -> None:
    """Create the kind's predictions table, or bring an earlier release's up to date in place, its
    rows kept: the columns it gave other names (``ModelKind.predictions_renamed``, old -> new) are
    renamed, and ``horizon_days`` (rows scored before it stay null) is added."""
    schema, name = kind.predictions_table.split(".")
    have = {
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }
    for old, new in kind.predictions_renamed.items():
        if old in have and new not in have:
            con.execute(f'alter table {kind.predictions_table} rename column "{old}" to "{new}"')
            log.info("%s: column %s renamed %s", kind.predictions_table, old, new)
    con.execute(kind.predictions_ddl)
    con.execute(f"alter table {kind.predictions_table} add column if not exists horizon_days integer")
