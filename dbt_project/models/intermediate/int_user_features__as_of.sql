-- User features as of each cutoff, from activity strictly before the cutoff (point in time).
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
),

activity as (
    select * from {{ ref('int_user_activity__daily') }}
),

lifetime as (
    select
        tenant_id,
        user_id,
        min(activity_date) as first_activity_date,
        min(activity_date) filter (where has_cancelled) as cancelled_on
    from activity
    group by tenant_id, user_id
),

windowed as (
    select
        cutoffs.tenant_id,
        activity.user_id,
        cutoffs.cutoff_date,
        {{ sum_count('activity.events', where='activity.activity_date >= cutoffs.cutoff_date - 1') }} as events_1d,
        {{ sum_count('activity.events', where='activity.activity_date >= cutoffs.cutoff_date - 7') }} as events_7d,
        {{ sum_count('activity.events') }} as events_28d,
        {{ sum_count('activity.clicks', where='activity.activity_date >= cutoffs.cutoff_date - 7') }} as clicks_7d,
        {{ sum_count('activity.clicks') }} as clicks_28d,
        {{ sum_count('activity.completes') }} as completes_28d,
        {{ sum_count('activity.skips') }} as skips_28d,
        {{ sum_count('activity.likes') }} as likes_28d,
        sum(activity.dwell_seconds) as dwell_seconds_28d,
        {{ sum_count('activity.views') }} as views_28d,
        {{ sum_count('activity.sessions', where='activity.activity_date >= cutoffs.cutoff_date - 7') }} as sessions_7d,
        {{ sum_count('activity.sessions') }} as sessions_28d,
        count(*) as active_days_28d,
        max(activity.activity_date) as last_activity_date
    from cutoffs
    inner join activity
        on cutoffs.tenant_id = activity.tenant_id
        and cutoffs.cutoff_date > activity.activity_date
        and activity.activity_date >= cutoffs.cutoff_date - 28
    group by cutoffs.tenant_id, activity.user_id, cutoffs.cutoff_date
),

features as (
    select
        windowed.tenant_id,
        windowed.user_id,
        windowed.cutoff_date,
        coalesce(windowed.events_1d, 0) as events_1d,
        coalesce(windowed.events_7d, 0) as events_7d,
        windowed.events_28d,
        coalesce(windowed.clicks_7d, 0) as clicks_7d,
        windowed.clicks_28d,
        windowed.completes_28d,
        windowed.likes_28d,
        windowed.completes_28d / nullif(windowed.completes_28d + windowed.skips_28d, 0) as completion_rate_28d,
        windowed.dwell_seconds_28d / nullif(windowed.views_28d, 0) as avg_dwell_seconds_28d,
        coalesce(windowed.sessions_7d, 0) as sessions_7d,
        windowed.sessions_28d,
        windowed.events_28d / nullif(windowed.sessions_28d, 0) as events_per_session_28d,
        windowed.active_days_28d,
        windowed.cutoff_date - windowed.last_activity_date as days_since_last_activity,
        windowed.cutoff_date - lifetime.first_activity_date as tenure_days,
        coalesce(windowed.events_7d, 0) / (windowed.events_28d / 4.0) as activity_trend_7d_vs_28d
    from windowed
    inner join lifetime
        on windowed.tenant_id = lifetime.tenant_id
        and windowed.user_id = lifetime.user_id
    -- users who cancelled before the cutoff are no longer subscribers
    where lifetime.cancelled_on is null or lifetime.cancelled_on >= windowed.cutoff_date
)

select * from features
