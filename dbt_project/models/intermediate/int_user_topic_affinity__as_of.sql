-- Each user's share of clicks per topic in the tenant's long feature window before every cutoff
-- (int_tenant_windows; point in time).
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
        {{ sum_count('topic_activity.clicks') }} as clicks_long
    from cutoffs
    inner join topic_activity
        on cutoffs.tenant_id = topic_activity.tenant_id
        and cutoffs.cutoff_date > topic_activity.activity_date
        and topic_activity.activity_date >= cutoffs.cutoff_date - cutoffs.feature_window_days
    group by cutoffs.tenant_id, topic_activity.user_id, topic_activity.topic, cutoffs.cutoff_date
),

affinity as (
    select
        tenant_id,
        user_id,
        topic,
        cutoff_date,
        clicks_long,
        clicks_long / sum(clicks_long) over (partition by tenant_id, user_id, cutoff_date) as affinity_long
    from clicks
)

select * from affinity
