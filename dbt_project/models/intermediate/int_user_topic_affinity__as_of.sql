-- Each user's share of clicks per topic in the 28 days before every cutoff (point in time).
with

topic_activity as (
    select * from {{ ref('int_user_topic_activity__daily') }}
),

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
),

clicks as (
    select
        cutoffs.tenant_id,
        topic_activity.user_id,
        topic_activity.topic,
        cutoffs.cutoff_date,
        {{ sum_count('topic_activity.clicks') }} as clicks_28d
    from cutoffs
    inner join topic_activity
        on cutoffs.tenant_id = topic_activity.tenant_id
        and cutoffs.cutoff_date > topic_activity.activity_date
        and topic_activity.activity_date >= cutoffs.cutoff_date - 28
    group by cutoffs.tenant_id, topic_activity.user_id, topic_activity.topic, cutoffs.cutoff_date
),

affinity as (
    select
        tenant_id,
        user_id,
        topic,
        cutoff_date,
        clicks_28d,
        clicks_28d / sum(clicks_28d) over (partition by tenant_id, user_id, cutoff_date) as affinity_28d
    from clicks
)

select * from affinity
