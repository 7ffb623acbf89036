-- Share of each user's clicks per topic over the 28 days before the serving cutoff.
with

topic_activity as (
    select * from {{ ref('int_user_topic_activity__daily') }}
),

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where is_serving
),

clicks as (
    select
        topic_activity.tenant_id,
        topic_activity.user_id,
        topic_activity.topic,
        cutoffs.cutoff_date,
        sum(topic_activity.clicks) as clicks_28d
    from topic_activity
    inner join cutoffs
        on cutoffs.tenant_id = topic_activity.tenant_id
        and topic_activity.activity_date < cutoffs.cutoff_date
        and topic_activity.activity_date >= cutoffs.cutoff_date - 28
    group by topic_activity.tenant_id, topic_activity.user_id, topic_activity.topic, cutoffs.cutoff_date
),

affinity as (
    select
        tenant_id,
        user_id,
        topic,
        cutoff_date,
        clicks_28d,
        clicks_28d / sum(clicks_28d) over (partition by tenant_id, user_id) as affinity_28d
    from clicks
)

select * from affinity
