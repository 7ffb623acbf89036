"""Every candidate the re-ranker orders, per user and cutoff: the SQL sources'
(int_recommendation_candidates__as_of) plus each user's whole-history candidates, every one
scored by the classic recommender families (SAR, EASE) fitted before its cutoff.

The work is ml.models.recsys.candidates.score_candidates (its docstring has the rules), once per
tenant; this model only reads its inputs and types its output.
"""

import json

TYPES = {
    "tenant_id": "varchar",
    "cutoff_date": "date",
    "user_id": "varchar",
    "item_id": "varchar",
    "is_popular_candidate": "boolean",
    "is_trending_candidate": "boolean",
    "is_topic_candidate": "boolean",
    "is_covisit_candidate": "boolean",
    "covisit_sessions_long": "bigint",
    "is_history_candidate": "boolean",
    "sar_score": "double",
    "sar_rank": "integer",
    "ease_score": "double",
    "ease_rank": "integer",
    "user_history_items": "integer",
    "user_days_since_last_interaction": "integer",
}


def model(dbt, session):
    import pandas as pd

    from ml.models.recsys.candidates import DAILY_INTERACTIONS_SQL, OUTPUT_COLUMNS, score_candidates

    dbt.config(materialized="table")
    per_user = int(dbt.config.get("per_user"))
    repeat_tenants = set(json.loads(dbt.config.get("repeat_tenants")))
    sources = dbt.ref("int_recommendation_candidates__as_of")
    daily = dbt.ref("stg_lake__events").query("events", DAILY_INTERACTIONS_SQL.format(events="events"))
    catalogue = dbt.ref("int_items__catalogued")
    tenants = sorted(r[0] for r in sources.project("tenant_id").distinct().fetchall())
    parts = []
    for tenant in tenants:
        literal = "'" + tenant.replace("'", "''") + "'"
        parts.append(
            score_candidates(
                sources.filter(f"tenant_id = {literal}").df(),
                daily.filter(f"tenant_id = {literal}").df(),
                per_user=per_user,
                exclude_seen=tenant not in repeat_tenants,
                catalogue=catalogue.filter(f"tenant_id = {literal}").project("item_id, published_at").df(),
            )
        )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OUTPUT_COLUMNS)
    session.register("history_candidates_frame", frame)
    typed = ", ".join(f"cast({c} as {t}) as {c}" for c, t in TYPES.items())
    # tenant order: zone maps skip other tenants' row groups on per-tenant reads. A relation, not
    # Arrow: dbt-duckdb writes the table from the frame in one pass, without an Arrow copy first
    return session.sql(f"select {typed} from history_candidates_frame order by tenant_id")
