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
from collections.abc import Iterable, Iterator
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
# a re-ranker's or classifier's serving rows are read and scored in parts of about this many rows of
# one tenant (whole users a part): memory holds a part, not a tenant's every candidate
SCORE_PART_ROWS = 1_000_000


def plan(tenant_ids: list[str] | None, k: int = TOP_K, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The ``score`` DAG's mapped work: one job per warehouse file of the named tenants (or all).

    Raises:
        TenantError: a named tenant is unknown.
    """
    tenants = TenantStore(settings).select(tenant_ids or None)
    return warehouse_jobs(tenants, named=bool(tenant_ids), k=k)


def score_warehouse(
    wh: Warehouse,
    settings: Settings | None = None,
    tenants: list[str] | None = None,
    k: int = TOP_K,
    part_rows: int = SCORE_PART_ROWS,
) -> dict[str, Any]:
    """Score every tenant of one warehouse (or the named ones) with its champion of each kind it uses
    (a re-ranker or classifier in parts of about ``part_rows`` serving rows, whole users a part).

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
                out[tid][kind_name] = _score(con, store.get(tid), kind, champ, k, part_rows)
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


def _serving_parts(
    con: Any, tenant_id: str, kind: ModelKind, exclude_seen: bool, part_rows: int
) -> Iterator[pd.DataFrame]:
    """The kind's serving mart for one tenant in parts of about ``part_rows`` rows, all of a user's
    rows in one part (split by a hash of the user id); for a kind with a history mart under the
    seen-items policy ``exclude``, without the items each user already consumed."""
    where = "tenant_id = $t"
    rows = con.execute(f"select count(*) from {kind.serving_mart} where {where}", {"t": tenant_id}).fetchone()[0]
    parts = max(1, -(-rows // part_rows))
    for part in range(parts):
        in_part = f"{where} and hash(user_id) % {parts} = {part}" if parts > 1 else where
        if kind.history_mart is None or not exclude_seen:
            yield con.execute(f"select * from {kind.serving_mart} where {in_part}", {"t": tenant_id}).df()
            continue
        yield con.execute(
            f"select * from {kind.serving_mart} as s where {in_part} and not exists ("
            f"select 1 from {kind.history_mart[0]} as h where h.tenant_id = $t "
            "and h.user_id = s.user_id and h.item_id = s.item_id)",
            {"t": tenant_id},
        ).df()


def _score(con: Any, tenant: Tenant, kind: ModelKind, champ: Champion, k: int, part_rows: int) -> dict[str, Any]:
    """Replace one tenant's rows of one kind's predictions table at its serving cutoff, in one
    transaction; a re-ranker or classifier scores the serving mart in parts of about ``part_rows``
    rows (:func:`_serving_parts`), each part's rows written before the next is read."""
    t0 = time.perf_counter()
    tenant_id, exclude_seen = tenant.tenant_id, tenant.seen_items == "exclude"
    if champ.recommender is not None:
        parts: Iterable[pd.DataFrame] = [_family_rows(con, tenant_id, kind, champ, k, exclude_seen)]
    else:
        parts = (
            kind.prediction_rows(frame, champ.booster.predict(kind.matrix(frame, champ.features), num_threads=1), k)
            for frame in _serving_parts(con, tenant_id, kind, exclude_seen, part_rows)
            if not frame.empty
        )
    meta = {
        # the window the rows predict: the one the champion learned (its label_days tag), else the
        # tenant's for the kind; live metrics judge the batch over it even after the window moves
        "horizon_days": champ.label_days or tenant_window(con, tenant_id, kind.window_column, kind.label_window_days),
        "model_name": champ.name,
        "model_version": champ.number,
        "trained_on": champ.trained_on,
        "scored_at": pd.Timestamp.now(tz="UTC"),
    }
    table, written, users, as_of = kind.predictions_table, 0, 0, None
    con.execute("begin")
    try:
        for rows in parts:
            if rows.empty:
                continue
            if as_of is None:  # the serving cutoff: every part's
                as_of = rows["as_of"].iloc[0]
                con.execute(f"delete from {table} where tenant_id = ? and as_of = ?", [tenant_id, as_of])
            con.register("scored", rows.assign(**meta))
            con.execute(f"insert into {table} by name select * from scored")
            con.unregister("scored")
            written, users = written + len(rows), users + int(rows["user_id"].nunique())  # parts: distinct users
            del rows  # not alive while the next part is read and scored
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if not written:
        return {"rows": 0, "model_version": champ.number}
    log.info("tenant %s: %s v%s scored %d rows", tenant_id, kind.name, champ.number, written)
    return {
        "rows": written,
        "users": users,
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
