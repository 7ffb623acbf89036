"""Every candidate the re-ranker orders, per user and cutoff: the SQL sources'
(int_recommendation_candidates__as_of) plus each user's whole-history candidates, every one
scored by the classic recommender families (SAR, EASE) fitted before its cutoff.

The work is ml.models.recsys.candidates' (its docstring has the rules): the families fitted once a
tenant and cutoff, then the cutoff's users scored in parts of about ``part_rows`` source rows (a
user's rows in one part), each part's rows into DuckDB as soon as they are scored. Memory holds one
part, not a tenant: a 100,000-visitor clickstream's serving cutoff alone is 6.4 million source rows
(benchmarks/README.md, *A shop's clickstream*). This model only reads its inputs and types its output.
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

    from ml.models.recsys.candidates import DAILY_INTERACTIONS_SQL, candidates_frame, fit_cutoff, score_part
    from ml.models.recsys.served import history_events

    dbt.config(materialized="table")
    per_user = int(dbt.config.get("per_user"))
    part_rows = int(dbt.config.get("part_rows"))
    if part_rows < 1:
        raise ValueError(f"dbt var candidates_part_rows must be 1 or more source rows a part, not {part_rows}")
    repeat_tenants = set(json.loads(dbt.config.get("repeat_tenants")))
    sources = dbt.ref("int_recommendation_candidates__as_of")
    daily = dbt.ref("stg_lake__events").query("events", DAILY_INTERACTIONS_SQL.format(events="events"))
    catalogue = dbt.ref("int_items__catalogued")
    columns = ", ".join(f"{c} {t}" for c, t in TYPES.items())
    session.execute(f"create or replace temp table history_candidates_rows ({columns})")
    typed = ", ".join(f"cast({c} as {t}) as {c}" for c, t in TYPES.items())
    counts = sources.aggregate("tenant_id, cutoff_date, count(*)").order("tenant_id, cutoff_date").fetchall()
    tenant, events, published = None, None, None
    for tid, cutoff, rows in counts:
        literal = "'" + tid.replace("'", "''") + "'"
        if tid != tenant:  # one tenant's interactions and catalogue in memory at a time
            tenant = tid
            events = history_events(daily.filter(f"tenant_id = {literal}").df())
            published = catalogue.filter(f"tenant_id = {literal}").project("item_id, published_at").df()
        fit = fit_cutoff(tenant, pd.Timestamp(cutoff), events, published)
        at_cutoff = sources.filter(f"tenant_id = {literal} and cutoff_date = date '{cutoff:%Y-%m-%d}'")
        parts = -(-rows // part_rows)
        for part in range(parts):  # whole users a part: split by a hash of the user id
            frame = at_cutoff.filter(f"hash(user_id) % {parts} = {part}").df() if parts > 1 else at_cutoff.df()
            scored = candidates_frame(tenant, [score_part(fit, frame, per_user, tenant not in repeat_tenants)])
            del frame
            session.register("history_candidates_frame", scored)
            session.execute(f"insert into history_candidates_rows select {typed} from history_candidates_frame")
            session.unregister("history_candidates_frame")
            del scored  # not alive while the next part is read and scored
        del fit  # nor while the next cutoff's families are fitted
    # tenant order: zone maps skip other tenants' row groups on per-tenant reads. A relation, not
    # Arrow: dbt-duckdb writes the table from it in one pass, without an Arrow copy first
    return session.sql("select * from history_candidates_rows order by tenant_id")
