"""How the recommender's served lists did once their outcome was known: its live metrics and decay.

Two sources of served lists: the score DAG's daily top 10 (``predictions.recommendations``) and the
API's answers (its prediction log, :class:`ml.core.prediction_log.ServedLog`), each judged by the
clicks after it as the holdout judges (:mod:`ml.models.evaluate`). Part of
:data:`ml.models.kinds.recommender.KIND`'s :class:`~ml.models.kinds.base.LiveMonitoring`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import pandas as pd

from ml.core.prediction_log import ServedLog
from ml.core.tenants import Tenant
from ml.models import evaluate
from ml.models.kinds._windows import batch_horizon, tenant_window
from ml.models.kinds.base import DecayPolicy, Verdict

K = evaluate.K
LABEL_WINDOW_DAYS = 7  # the label window of a warehouse built before int_tenant_windows (dbt var label_window_min_days)
NEXT_DAY = 1  # days of clicks after a list: the next day's, then its whole label window's

_LIVE_LISTS = """
with served as ({sources}),
lists as (
    select source, as_of, model_version, horizon_days, user_id, item_id, min(rank) as rank
    from served where as_of + $shortest <= $cutoff group by all
)
select source, as_of, model_version, horizon_days, user_id, item_id,
       row_number() over (partition by source, as_of, model_version, user_id order by rank, item_id) as rank
from lists
"""
# what each scored user clicked in its list's horizon, days after the batch; under the exclude
# policy not what they had consumed before it (the holdout's relevant items: a list cannot hold those)
_LIVE_CLICKS = """
with scored as (
    select distinct source, cast(as_of as date) as as_of, model_version, horizon_days, user_id from _live_lists
),
consumed as (
    select user_id, item_id, event_date, bool_or(is_interaction) as clicked
    from stg_lake__events where tenant_id = $t and {consumed} group by all
)
select s.source, s.as_of, s.model_version, c.user_id, c.item_id, min(c.event_date - s.as_of) as days_after
from scored s
join consumed c
    on c.clicked and c.user_id = s.user_id and c.event_date >= s.as_of and c.event_date < s.as_of + s.horizon_days
where not $exclude or not exists (
    select 1 from consumed p where p.user_id = c.user_id and p.item_id = c.item_id and p.event_date < s.as_of
)
group by all
"""
BATCH = ["source", "as_of", "model_version"]


# the prediction log's fields live metrics read (ml.core.prediction_log)
_LOGGED = {
    "at": "VARCHAR",
    "tenant_id": "VARCHAR",
    "endpoint": "VARCHAR",
    "user_id": "VARCHAR",
    "items": "VARCHAR[]",
    "model_version": "VARCHAR",
    "arm": "VARCHAR",
}


def _served_sources(con: Any, served_log: ServedLog | None) -> list[str]:
    """SQL of every served list as ``source, as_of, user_id, item_id, rank, model_version,
    horizon_days`` rows: a batch's horizon as scored, an API answer's the tenant's label window
    now (``$window``)."""
    sources = []
    if con.execute("select count(*) from duckdb_tables() where schema_name = 'predictions' "
                   "and table_name = 'recommendations'").fetchone()[0]:  # fmt: skip
        horizon = batch_horizon(con, "predictions.recommendations", "$window")
        sources.append(
            "select 'batch' as source, as_of, user_id, item_id, rank, model_version, "
            f"{horizon} as horizon_days from predictions.recommendations s where tenant_id = $t"
        )
    if served_log:
        records = served_log.relation(con, _LOGGED)
        sources.append(
            "select 'online' as source, cast(cast(\"at\" as timestamptz) as date) as as_of, user_id, "
            "unnest(items) as item_id, generate_subscripts(items, 1) as rank, model_version, $window as horizon_days "
            f"from {records} where tenant_id = $t and endpoint = 'recommendations' and arm <> 'cold_start'"
        )
    return sources


def live_metrics(
    con: Any, tenant: Tenant, serving_cutoff: date, served_log: ServedLog | None = None
) -> list[dict[str, Any]]:
    """HitRate@10, nDCG@10 and CTR of each batch of recommendations, per complete horizon.

    Two sources: ``batch`` (``predictions.recommendations`` at ``as_of``, the score DAG's daily
    top 10) and ``online`` (the API's answers, from its prediction log ``served_log``, a glob of
    JSONL files; a day's answers to a user form one list, each item at its best rank). A batch
    (source, day, model version) is judged as the holdout judges (:mod:`ml.models.evaluate`): a
    scored user's relevant items are what they clicked in ``[as_of, as_of + horizon)``, without
    what they had consumed before (clicked, or rated below the tenant's ``min_rating``) under the
    seen-items policy ``exclude``; ``users_active`` have
    one, ``users_hit`` have one in their top 10. CTR = ``recommended_clicked`` / ``impressions``
    (top-10 items). Horizons: the next day, and the label window the batch was scored under (its
    ``horizon_days``; the tenant's label window in ``int_tenant_windows`` for the API's answers
    and for batches scored before horizons were recorded). Only horizons that have fully passed count.
    """
    sources = " union all ".join(_served_sources(con, served_log))
    if not sources:
        return []
    tenant_id, exclude_seen = tenant.tenant_id, tenant.seen_items == "exclude"
    window = tenant_window(con, tenant_id, "label_window_days", LABEL_WINDOW_DAYS)
    params = {"t": tenant_id, "shortest": NEXT_DAY, "cutoff": serving_cutoff, "window": window}
    served_lists = con.execute(_LIVE_LISTS.format(sources=sources), params).df()  # the sources read once
    if served_lists.empty:  # no horizon has passed (an empty frame's ids would register untyped)
        return []
    con.register("_live_lists", served_lists)
    try:
        consumed = "is_consumed" if _has_column(con, "stg_lake__events", "is_consumed") else "is_interaction"
        clicks = con.execute(_LIVE_CLICKS.format(consumed=consumed), {"t": tenant_id, "exclude": exclude_seen}).df()
    finally:
        con.unregister("_live_lists")
    out, relevant = [], dict(list(clicks.groupby(BATCH, sort=False)))
    for (source, as_of, version), batch in served_lists.groupby(BATCH, sort=True):
        days_left = (pd.Timestamp(serving_cutoff) - pd.Timestamp(as_of)).days
        top, clicked = batch[batch["rank"] <= K], relevant.get((source, as_of, version), clicks.iloc[:0])
        for h in sorted({NEXT_DAY, int(batch["horizon_days"].iloc[0])}):
            if days_left >= h:
                out.append(_judged(tenant_id, source, as_of, version, h, top, clicked[clicked["days_after"] < h]))
    return out


def _has_column(con: Any, relation: str, column: str) -> bool:
    """Whether ``relation`` has ``column`` (``stg_lake__events`` of a warehouse built before ``is_consumed``: every
    consumption was an interaction then)."""
    try:
        con.execute(f"select {column} from {relation} limit 0")
    except duckdb.BinderException:
        return False
    return True


def _judged(
    tenant_id: str, source: str, as_of: Any, version: Any, h: int, top: pd.DataFrame, truth: pd.DataFrame
) -> dict[str, Any]:
    """One batch's live metrics row at horizon ``h``: its ``top`` lists against the clicks ``truth``."""
    _, hits, n_relevant = evaluate.hits_matrix(top, truth, K)
    judged = evaluate.per_query_metrics(hits, n_relevant)
    active = len(judged)
    return {
        "tenant_id": tenant_id,
        "kind": "recommender",
        "source": source,
        "model_version": str(version),
        "as_of": pd.Timestamp(as_of).date(),
        "horizon_days": h,
        "users_scored": int(top["user_id"].nunique()),
        "users_active": active,
        "users_hit": int(judged["hit"].sum()),
        "impressions": len(top),
        "recommended_clicked": int(hits.sum()),
        f"hit_rate_at_{K}": float(judged["hit"].mean()) if active else None,
        f"ndcg_at_{K}": float(judged["ndcg"].mean()) if active else None,
        "ctr": float(hits.sum()) / len(top) if len(top) else None,
    }


def decay(batches: list[dict[str, Any]], holdout: dict[str, float], policy: DecayPolicy, version: str) -> Verdict:
    """Live HitRate@10 of the champion's newest batch judged over its holdout's label window (the
    monitor passes only those, ``ml.monitoring.checks._performance``; the score DAG's batch before
    the API's answers of the same day), against its holdout's."""
    metric = "live_hit_rate_at_10"
    reference = holdout.get("hit_rate_at_10")
    if reference is None:
        return Verdict(metric, None, None, None, "no_reference", "the champion's run has no holdout hit_rate_at_10")
    threshold = reference * (1 - policy.decay_tolerance)
    if not batches:
        why = f"no recommendations by v{version} with their label window of clicks after them yet"
        return Verdict(metric, None, threshold, None, "insufficient_data", why)
    last = max(batches, key=lambda b: (b["as_of"], b["source"] == "batch"))
    if last["users_active"] < policy.min_users:
        why = f"{last['users_active']:,} active users after {last['as_of']} (< {policy.min_users:,})"
        return Verdict(metric, last["hit_rate_at_10"], threshold, None, "insufficient_data", why)
    value = float(last["hit_rate_at_10"])
    detail = (
        f"batch of {last['as_of']}: {last['users_hit']:,}/{last['users_active']:,} active users clicked a "
        f"recommended item; holdout {reference:.3f}"
    )
    return Verdict(metric, value, threshold, value < threshold, "ok", detail)


def pooled_hit_rate(live: pd.DataFrame, version: str) -> tuple[float | None, int]:
    """HitRate@10 of one version's batches pooled over their active users, and how many there were."""
    rows = live[live["model_version"] == version]
    active = int(rows["users_active"].sum())
    return (float(rows["users_hit"].sum()) / active if active else None), active
