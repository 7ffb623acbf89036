-- Item features as of each cutoff, from activity strictly before the cutoff (point in time).
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
),

items as (
    select * from {{ ref('int_items__catalogued') }}
),

activity as (
    select * from {{ ref('int_item_activity__daily') }}
),

available as (
    select
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        items.item_id,
        items.topic,
        items.published_at
    from cutoffs
    inner join items
        on cutoffs.tenant_id = items.tenant_id
        and cast(items.published_at as date) < cutoffs.cutoff_date
),

windowed as (
    select
        available.tenant_id,
        available.item_id,
        available.cutoff_date,
        {{ sum_count('activity.clicks', where='activity.activity_date >= available.cutoff_date - 1') }} as clicks_1d,
        {{ sum_count('activity.clicks', where='activity.activity_date >= available.cutoff_date - 7') }} as clicks_7d,
        {{ sum_count('activity.clicks') }} as clicks_28d,
        {{ sum_count('activity.users', where='activity.activity_date >= available.cutoff_date - 7') }} as user_days_7d,
        {{ sum_count('activity.completes') }} as completes_28d,
        {{ sum_count('activity.skips') }} as skips_28d,
        {{ sum_count('activity.likes') }} as likes_28d
    from available
    left join activity
        on available.tenant_id = activity.tenant_id
        and available.item_id = activity.item_id
        and available.cutoff_date > activity.activity_date
        and activity.activity_date >= available.cutoff_date - 28
    group by available.tenant_id, available.item_id, available.cutoff_date
),

features as (
    select
        available.tenant_id,
        available.item_id,
        available.cutoff_date,
        available.topic,
        coalesce(windowed.clicks_1d, 0) as clicks_1d,
        coalesce(windowed.clicks_7d, 0) as clicks_7d,
        coalesce(windowed.clicks_28d, 0) as clicks_28d,
        coalesce(windowed.user_days_7d, 0) as user_days_7d,
        coalesce(windowed.likes_28d, 0) as likes_28d,
        windowed.completes_28d / nullif(windowed.completes_28d + windowed.skips_28d, 0) as completion_rate_28d,
        date_diff('hour', available.published_at, cast(available.cutoff_date as timestamptz)) / 24.0 as age_days,
        coalesce(windowed.clicks_1d, 0) / (coalesce(windowed.clicks_7d, 0) / 7.0 + 1.0) as trending_score,
        row_number() over (
            partition by available.tenant_id, available.cutoff_date
            order by coalesce(windowed.clicks_7d, 0) desc, available.item_id
        ) as popularity_rank_7d
    from available
    inner join windowed
        on available.tenant_id = windowed.tenant_id
        and available.item_id = windowed.item_id
        and available.cutoff_date = windowed.cutoff_date
)

select * from features
