-- Point-in-time churn examples: subscribers active in the 28 days before cutoff C, features as
-- of C, label = cancelled within [C, C + churn window). Only cutoffs whose window is complete.
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

examples as (
    select
        user_features.*,
        coalesce(
            cancellations.cancelled_on < user_features.cutoff_date + {{ var('churn_window_days') }},
            false
        ) as is_churned
    from user_features
    inner join cutoffs
        on user_features.tenant_id = cutoffs.tenant_id
        and user_features.cutoff_date = cutoffs.cutoff_date
    left join cancellations
        on user_features.tenant_id = cancellations.tenant_id
        and user_features.user_id = cancellations.user_id
)

-- stored in tenant order (zone maps skip other tenants' row groups on per-tenant reads)
select * from examples
order by tenant_id, cutoff_date, user_id
