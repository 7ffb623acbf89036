-- Candidate generation in SQL, per user and cutoff (training cutoffs and the serving one): the
-- tenant's popular and trending items, the top items of the user's favourite topics, and items
-- co-clicked with what the user clicked in the tenant's short window (int_tenant_windows).
-- int_recommendation_candidates__history adds each user's whole-history candidates and scores
-- them all; the re-ranker orders those.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label or is_serving
),

interactions as (
    select * from {{ ref('stg_lake__events') }}
    where is_interaction and user_id is not null and item_id is not null
),

returning_users as (
    select * from {{ ref('int_ranking_queries__returning') }}
),

-- the users candidates are generated for: at the serving cutoff everyone active in the long
-- feature window before it, and everyone else with history before it (their lists come from
-- their whole history, int_recommendation_candidates__history); at a training cutoff only those
-- who come back within the longest label window, the only ones training and the holdout read
-- (ranking_examples keeps those alone: a clickstream whose visitors mostly come once scored
-- every visitor active in the feature window at every cutoff for nothing, and its 100,000
-- visitors ran the build out of 24 GiB: benchmarks/README.md, *A shop's clickstream*)
active_users as (
    select
        user_features.tenant_id,
        user_features.cutoff_date,
        user_features.user_id,
        cutoffs.short_window_days
    from {{ ref('int_user_features__as_of') }} as user_features
    inner join cutoffs
        on user_features.tenant_id = cutoffs.tenant_id
        and user_features.cutoff_date = cutoffs.cutoff_date
    where cutoffs.is_serving
    union all
    select
        user_features.tenant_id,
        user_features.cutoff_date,
        user_features.user_id,
        returning_users.short_window_days
    from {{ ref('int_user_features__as_of') }} as user_features
    inner join returning_users
        on user_features.tenant_id = returning_users.tenant_id
        and user_features.cutoff_date = returning_users.cutoff_date
        and user_features.user_id = returning_users.user_id
),

first_interactions as (
    select
        tenant_id,
        user_id,
        min(event_date) as first_date
    from interactions
    group by tenant_id, user_id
),

history_users as (
    select
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        first_interactions.user_id,
        cutoffs.short_window_days
    from cutoffs
    inner join first_interactions
        on cutoffs.tenant_id = first_interactions.tenant_id
        and cutoffs.cutoff_date > first_interactions.first_date
    where cutoffs.is_serving
    union all
    select
        returning_users.tenant_id,
        returning_users.cutoff_date,
        returning_users.user_id,
        returning_users.short_window_days
    from returning_users
    inner join first_interactions
        on returning_users.tenant_id = first_interactions.tenant_id
        and returning_users.user_id = first_interactions.user_id
        and returning_users.cutoff_date > first_interactions.first_date
),

-- (each carries its cutoff's short window: recent_clicks)
users as (
    select * from active_users
    union
    select * from history_users
),

items as (
    select
        *,
        row_number() over (
            partition by tenant_id, cutoff_date order by trending_score desc, item_id asc
        ) as trending_rank,
        row_number() over (
            partition by tenant_id, cutoff_date, topic order by clicks_short desc, item_id asc
        ) as topic_rank
    from {{ ref('int_item_features__as_of') }}
),

-- Each source below joins two relations at a time, with an aggregate or window between
-- steps: given three or more relations sharing (tenant_id, cutoff_date), DuckDB's join order
-- sometimes paired users with items on those two columns alone first (164M rows for 50 small
-- tenants, twice the build time).
favourite_topics as (
    select
        affinity.tenant_id,
        affinity.cutoff_date,
        affinity.user_id,
        affinity.topic
    from {{ ref('int_user_topic_affinity__as_of') }} as affinity
    inner join users
        on affinity.tenant_id = users.tenant_id
        and affinity.cutoff_date = users.cutoff_date
        and affinity.user_id = users.user_id
    qualify row_number() over (
            partition by affinity.tenant_id, affinity.cutoff_date, affinity.user_id
            order by affinity.affinity_long desc, affinity.topic asc
        ) <= {{ var('candidate_topics_per_user') }}
),

recent_clicks as (
    select distinct
        users.tenant_id,
        users.cutoff_date,
        users.user_id,
        events.item_id
    from users
    inner join interactions as events
        on users.tenant_id = events.tenant_id
        and users.user_id = events.user_id
        and users.cutoff_date > events.event_date
        and events.event_date >= users.cutoff_date - users.short_window_days
),

covisits as (
    select * from {{ ref('int_item_covisits__as_of') }}
),

-- the tenant-wide sources (the same items for every user): one join, flagged by source
tenant_wide as (
    select
        users.tenant_id,
        users.cutoff_date,
        users.user_id,
        items.item_id,
        items.popularity_rank_short <= {{ var('candidates_popular') }} as from_popular,
        items.trending_rank <= {{ var('candidates_trending') }} as from_trending,
        false as from_topic,
        false as from_covisit,
        0 as covisit_sessions
    from users
    inner join items
        on users.tenant_id = items.tenant_id
        and users.cutoff_date = items.cutoff_date
        and (
            items.popularity_rank_short <= {{ var('candidates_popular') }}
            or items.trending_rank <= {{ var('candidates_trending') }}
        )
),

topical as (
    select
        favourite_topics.tenant_id,
        favourite_topics.cutoff_date,
        favourite_topics.user_id,
        items.item_id,
        false as from_popular,
        false as from_trending,
        true as from_topic,
        false as from_covisit,
        0 as covisit_sessions
    from favourite_topics
    inner join items
        on favourite_topics.tenant_id = items.tenant_id
        and favourite_topics.cutoff_date = items.cutoff_date
        and favourite_topics.topic = items.topic
        and items.topic_rank <= {{ var('candidates_per_topic') }}
),

covisit_scores as (
    select
        recent_clicks.tenant_id,
        recent_clicks.cutoff_date,
        recent_clicks.user_id,
        covisits.covisited_item_id as item_id,
        {{ sum_count('covisits.sessions_long') }} as covisit_sessions
    from recent_clicks
    inner join covisits
        on recent_clicks.tenant_id = covisits.tenant_id
        and recent_clicks.cutoff_date = covisits.cutoff_date
        and recent_clicks.item_id = covisits.item_id
    group by recent_clicks.tenant_id, recent_clicks.cutoff_date, recent_clicks.user_id, covisits.covisited_item_id
),

covisited as (
    select
        covisit_scores.tenant_id,
        covisit_scores.cutoff_date,
        covisit_scores.user_id,
        covisit_scores.item_id,
        false as from_popular,
        false as from_trending,
        false as from_topic,
        true as from_covisit,
        covisit_scores.covisit_sessions
    -- (neighbours are catalogued items already: int_item_covisits__as_of)
    from covisit_scores
    qualify row_number() over (
            partition by covisit_scores.tenant_id, covisit_scores.cutoff_date, covisit_scores.user_id
            order by covisit_scores.covisit_sessions desc, covisit_scores.item_id asc
        ) <= {{ var('candidates_covisit') }}
),

all_sources as (
    select * from tenant_wide
    union all
    select * from topical
    union all
    select * from covisited
),

candidates as (
    select
        tenant_id,
        cutoff_date,
        user_id,
        item_id,
        bool_or(from_popular) as is_popular_candidate,
        bool_or(from_trending) as is_trending_candidate,
        bool_or(from_topic) as is_topic_candidate,
        bool_or(from_covisit) as is_covisit_candidate,
        {{ sum_count('covisit_sessions') }} as covisit_sessions_long
    from all_sources
    group by tenant_id, cutoff_date, user_id, item_id
)

select * from candidates
