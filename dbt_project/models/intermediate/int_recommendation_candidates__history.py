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
    from ml.models.recsys.candidates import DAILY_INTERACTIONS_SQL, score_candidates

    dbt.config(materialized="table")
    per_user = int(dbt.config.get("per_user"))
    repeat_tenants = set(json.loads(dbt.config.get("repeat_tenants")))
    sources = dbt.ref("int_recommendation_candidates__as_of")
    daily = dbt.ref("stg_lake__events").query("events", DAILY_INTERACTIONS_SQL.format(events="events"))
    catalogue = dbt.ref("int_items__catalogued")
    tenants = sorted(r[0] for r in sources.project("tenant_id").distinct().fetchall())
    # each tenant's rows go into DuckDB as soon as they are scored: one tenant's frame in memory at a
    # time, not every tenant's frames and their concatenation (a copy of every row) at once
    columns = ", ".join(f"{c} {t}" for c, t in TYPES.items())
    session.execute(f"create or replace temp table history_candidates_rows ({columns})")
    typed = ", ".join(f"cast({c} as {t}) as {c}" for c, t in TYPES.items())
    for tenant in tenants:
        literal = "'" + tenant.replace("'", "''") + "'"
        frame = score_candidates(
            sources.filter(f"tenant_id = {literal}").df(),
            daily.filter(f"tenant_id = {literal}").df(),
            per_user=per_user,
            exclude_seen=tenant not in repeat_tenants,
            catalogue=catalogue.filter(f"tenant_id = {literal}").project("item_id, published_at").df(),
        )
        session.register("history_candidates_frame", frame)
        session.execute(f"insert into history_candidates_rows select {typed} from history_candidates_frame")
        session.unregister("history_candidates_frame")
    # tenant order: zone maps skip other tenants' row groups on per-tenant reads. A relation, not
    # Arrow: dbt-duckdb writes the table from it in one pass, without an Arrow copy first
    return session.sql("select * from history_candidates_rows order by tenant_id")
