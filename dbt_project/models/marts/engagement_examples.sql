-- Point-in-time engagement examples: subscribers active in the long feature window before cutoff
-- C, features as of C, label = their sessions in [C, C + the tenant's short window), the window
-- their sessions_short feature counts before C. Only cutoffs whose window is complete.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_engagement_label and not is_serving
),

user_features as (
    select * from {{ ref('int_user_features__as_of') }}
),

activity as (
    select * from {{ ref('int_user_activity__daily') }}
),

next_sessions as (
    select
        user_features.tenant_id,
        user_features.user_id,
        user_features.cutoff_date,
        {{ sum_count('activity.sessions') }} as sessions
    from user_features
    inner join cutoffs
        on user_features.tenant_id = cutoffs.tenant_id
        and user_features.cutoff_date = cutoffs.cutoff_date
    inner join activity
        on user_features.tenant_id = activity.tenant_id
        and user_features.user_id = activity.user_id
        and user_features.cutoff_date <= activity.activity_date
        and activity.activity_date < user_features.cutoff_date + cutoffs.short_window_days
    group by user_features.tenant_id, user_features.user_id, user_features.cutoff_date
),

examples as (
    select
        user_features.*,
        coalesce(next_sessions.sessions, 0) as sessions_next_short
    from user_features
    inner join cutoffs
        on user_features.tenant_id = cutoffs.tenant_id
        and user_features.cutoff_date = cutoffs.cutoff_date
    left join next_sessions
        on user_features.tenant_id = next_sessions.tenant_id
        and user_features.user_id = next_sessions.user_id
        and user_features.cutoff_date = next_sessions.cutoff_date
)

-- stored in tenant order (zone maps skip other tenants' row groups on per-tenant reads)
select * from examples
order by tenant_id, cutoff_date, user_id
