-- Point-in-time churn examples: users active in the long feature window before cutoff C, features
-- as of C, label = churned within [C, C + the tenant's churn window) by its definition
-- (int_tenant_churn_definitions): cancelled, or (a tenant without cancellations) no event at all
-- in the window. The window is the tenant's (int_tenant_windows: its setting, or from its
-- activity cadence). Only cutoffs whose window is complete.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_churn_label and not is_serving
),

user_features as (
    select * from {{ ref('int_user_features__as_of') }}
),

cancellations as (
    select
        tenant_id,
        user_id,
        min(event_date) as cancelled_on
    from {{ ref('stg_lake__events') }}
    where event_type = 'cancel_subscription'
    group by tenant_id, user_id
),

labelled_users as (
    select
        user_features.*,
        cutoffs.churn_window_days
    from user_features
    inner join cutoffs
        on user_features.tenant_id = cutoffs.tenant_id
        and user_features.cutoff_date = cutoffs.cutoff_date
),

returned as (
    select distinct
        labelled_users.tenant_id,
        labelled_users.user_id,
        labelled_users.cutoff_date
    from labelled_users
    inner join {{ ref('int_user_activity__daily') }} as activity
        on labelled_users.tenant_id = activity.tenant_id
        and labelled_users.user_id = activity.user_id
        and labelled_users.cutoff_date <= activity.activity_date
        and activity.activity_date < labelled_users.cutoff_date + labelled_users.churn_window_days
),

examples as (
    select
        labelled_users.*,
        case
            when definitions.churn_definition = 'cancellation'
                then coalesce(
                        cancellations.cancelled_on < labelled_users.cutoff_date + labelled_users.churn_window_days,
                        false
                    )
            else returned.user_id is null
        end as is_churned
    from labelled_users
    inner join {{ ref('int_tenant_churn_definitions') }} as definitions
        on labelled_users.tenant_id = definitions.tenant_id
    left join cancellations
        on labelled_users.tenant_id = cancellations.tenant_id
        and labelled_users.user_id = cancellations.user_id
    left join returned
        on labelled_users.tenant_id = returned.tenant_id
        and labelled_users.user_id = returned.user_id
        and labelled_users.cutoff_date = returned.cutoff_date
)

-- stored in tenant order (zone maps skip other tenants' row groups on per-tenant reads)
select * exclude (churn_window_days) from examples
order by tenant_id, cutoff_date, user_id
