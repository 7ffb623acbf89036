-- Point-in-time training examples for the recommender's re-ranker. For each training cutoff C:
-- features from activity strictly before C, labels from clicks in [C, C + label window).
-- Candidates per user: the tenant's most popular items at C plus the items the user clicked.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label and not is_serving
),

events as (
    select * from {{ ref('stg_lake__events') }}
    where event_type = 'click'
),

user_features as (
    select * from {{ ref('int_user_features__as_of') }}
),

item_features as (
    select * from {{ ref('int_item_features__as_of') }}
),

topic_affinity as (
    select * from {{ ref('int_user_topic_affinity__as_of') }}
),

positives as (
    select distinct
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        events.user_id,
        events.item_id
    from cutoffs
    inner join events
        on events.tenant_id = cutoffs.tenant_id
        and events.event_date >= cutoffs.cutoff_date
        and events.event_date < cutoffs.cutoff_date + {{ var('label_window_days') }}
),

labelled_users as (
    select distinct positives.tenant_id, positives.cutoff_date, positives.user_id
    from positives
    inner join user_features
        on user_features.tenant_id = positives.tenant_id
        and user_features.user_id = positives.user_id
        and user_features.cutoff_date = positives.cutoff_date
),

popular_candidates as (
    select labelled_users.tenant_id, labelled_users.cutoff_date, labelled_users.user_id, item_features.item_id
    from labelled_users
    inner join item_features
        on item_features.tenant_id = labelled_users.tenant_id
        and item_features.cutoff_date = labelled_users.cutoff_date
        and item_features.popularity_rank_7d <= {{ var('candidates_per_cutoff') }}
),

candidates as (
    select tenant_id, cutoff_date, user_id, item_id from popular_candidates
    union
    select positives.tenant_id, positives.cutoff_date, positives.user_id, positives.item_id
    from positives
    inner join labelled_users
        on labelled_users.tenant_id = positives.tenant_id
        and labelled_users.cutoff_date = positives.cutoff_date
        and labelled_users.user_id = positives.user_id
),

examples as (
    select
        candidates.tenant_id,
        candidates.cutoff_date,
        candidates.user_id,
        candidates.item_id,
        candidates.tenant_id || '/' || candidates.user_id || '/' || cast(candidates.cutoff_date as varchar) as query_id,
        (positives.item_id is not null) as is_clicked,
        user_features.events_7d as user_events_7d,
        user_features.events_28d as user_events_28d,
        user_features.clicks_28d as user_clicks_28d,
        user_features.completion_rate_28d as user_completion_rate_28d,
        user_features.days_since_last_activity as user_days_since_last_activity,
        item_features.topic as item_topic,
        item_features.clicks_1d as item_clicks_1d,
        item_features.clicks_7d as item_clicks_7d,
        item_features.clicks_28d as item_clicks_28d,
        item_features.completion_rate_28d as item_completion_rate_28d,
        item_features.age_days as item_age_days,
        item_features.trending_score as item_trending_score,
        item_features.popularity_rank_7d as item_popularity_rank_7d,
        coalesce(topic_affinity.affinity_28d, 0) as user_item_topic_affinity_28d,
        coalesce(topic_affinity.clicks_28d, 0) as user_item_topic_clicks_28d
    from candidates
    inner join user_features
        on user_features.tenant_id = candidates.tenant_id
        and user_features.user_id = candidates.user_id
        and user_features.cutoff_date = candidates.cutoff_date
    inner join item_features
        on item_features.tenant_id = candidates.tenant_id
        and item_features.item_id = candidates.item_id
        and item_features.cutoff_date = candidates.cutoff_date
    left join positives
        on positives.tenant_id = candidates.tenant_id
        and positives.cutoff_date = candidates.cutoff_date
        and positives.user_id = candidates.user_id
        and positives.item_id = candidates.item_id
    left join topic_affinity
        on topic_affinity.tenant_id = candidates.tenant_id
        and topic_affinity.cutoff_date = candidates.cutoff_date
        and topic_affinity.user_id = candidates.user_id
        and topic_affinity.topic = item_features.topic
)

select * from examples
