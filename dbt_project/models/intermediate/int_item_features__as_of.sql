-- Item features as of each cutoff, from activity strictly before the cutoff (point in time), over
-- the tenant's short and long feature windows (int_tenant_windows: *_short, *_long) and the last day.
{% set in_short_window = 'activity.activity_date >= available.cutoff_date - available.short_window_days' %}

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
        cutoffs.feature_window_days,
        cutoffs.short_window_days,
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
        {{ sum_count('activity.clicks', where=in_short_window) }} as clicks_short,
        {{ sum_count('activity.clicks') }} as clicks_long,
        {{ sum_count('activity.users', where=in_short_window) }} as user_days_short,
        {{ sum_count('activity.completes') }} as completes_long,
        {{ sum_count('activity.skips') }} as skips_long,
        {{ sum_count('activity.likes') }} as likes_long
    from available
    left join activity
        on available.tenant_id = activity.tenant_id
        and available.item_id = activity.item_id
        and available.cutoff_date > activity.activity_date
        and activity.activity_date >= available.cutoff_date - available.feature_window_days
    group by available.tenant_id, available.item_id, available.cutoff_date
),

features as (
    select
        available.tenant_id,
        available.item_id,
        available.cutoff_date,
        available.topic,
        coalesce(windowed.clicks_1d, 0) as clicks_1d,
        coalesce(windowed.clicks_short, 0) as clicks_short,
        coalesce(windowed.clicks_long, 0) as clicks_long,
        coalesce(windowed.user_days_short, 0) as user_days_short,
        coalesce(windowed.likes_long, 0) as likes_long,
        windowed.completes_long / nullif(windowed.completes_long + windowed.skips_long, 0) as completion_rate_long,
        date_diff('hour', available.published_at, cast(available.cutoff_date as timestamptz)) / 24.0 as age_days,
        coalesce(windowed.clicks_1d, 0) / (coalesce(windowed.clicks_short, 0) / available.short_window_days + 1.0)
            as trending_score,
        row_number() over (
            partition by available.tenant_id, available.cutoff_date
            order by coalesce(windowed.clicks_short, 0) desc, available.item_id
        ) as popularity_rank_short
    from available
    inner join windowed
        on available.tenant_id = windowed.tenant_id
        and available.item_id = windowed.item_id
        and available.cutoff_date = windowed.cutoff_date
)

select * from features
