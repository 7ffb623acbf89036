-- User features as of each cutoff, from activity strictly before the cutoff (point in time), over
-- the tenant's short and long feature windows (int_tenant_windows: *_short, *_long) and the last day.
{% set in_short_window = 'activity.activity_date >= cutoffs.cutoff_date - cutoffs.short_window_days' %}

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
        cutoffs.feature_window_days,
        cutoffs.short_window_days,
        {{ sum_count('activity.events', where='activity.activity_date >= cutoffs.cutoff_date - 1') }} as events_1d,
        {{ sum_count('activity.events', where=in_short_window) }} as events_short,
        {{ sum_count('activity.events') }} as events_long,
        {{ sum_count('activity.clicks', where=in_short_window) }} as clicks_short,
        {{ sum_count('activity.clicks') }} as clicks_long,
        {{ sum_count('activity.completes') }} as completes_long,
        {{ sum_count('activity.skips') }} as skips_long,
        {{ sum_count('activity.likes') }} as likes_long,
        sum(activity.dwell_seconds) as dwell_seconds_long,
        {{ sum_count('activity.views') }} as views_long,
        {{ sum_count('activity.sessions', where=in_short_window) }} as sessions_short,
        {{ sum_count('activity.sessions') }} as sessions_long,
        count(*) as active_days_long,
        max(activity.activity_date) as last_activity_date
    from cutoffs
    inner join activity
        on cutoffs.tenant_id = activity.tenant_id
        and cutoffs.cutoff_date > activity.activity_date
        and activity.activity_date >= cutoffs.cutoff_date - cutoffs.feature_window_days
    group by
        cutoffs.tenant_id, activity.user_id, cutoffs.cutoff_date, cutoffs.feature_window_days, cutoffs.short_window_days
),

features as (
    select
        windowed.tenant_id,
        windowed.user_id,
        windowed.cutoff_date,
        coalesce(windowed.events_1d, 0) as events_1d,
        coalesce(windowed.events_short, 0) as events_short,
        windowed.events_long,
        coalesce(windowed.clicks_short, 0) as clicks_short,
        windowed.clicks_long,
        windowed.completes_long,
        windowed.likes_long,
        windowed.completes_long / nullif(windowed.completes_long + windowed.skips_long, 0) as completion_rate_long,
        windowed.dwell_seconds_long / nullif(windowed.views_long, 0) as avg_dwell_seconds_long,
        coalesce(windowed.sessions_short, 0) as sessions_short,
        windowed.sessions_long,
        windowed.events_long / nullif(windowed.sessions_long, 0) as events_per_session_long,
        windowed.active_days_long,
        windowed.cutoff_date - windowed.last_activity_date as days_since_last_activity,
        windowed.cutoff_date - lifetime.first_activity_date as tenure_days,
        -- the short window's events over the long window's mean per short window (below 1: slowing down)
        coalesce(windowed.events_short, 0)
        / (windowed.events_long * windowed.short_window_days / windowed.feature_window_days)
            as activity_trend_short_vs_long
    from windowed
    inner join lifetime
        on windowed.tenant_id = lifetime.tenant_id
        and windowed.user_id = lifetime.user_id
    -- users who cancelled before the cutoff are no longer subscribers
    where lifetime.cancelled_on is null or lifetime.cancelled_on >= windowed.cutoff_date
)

select * from features
