-- The dates features are computed "as of" (everything strictly before the cutoff), per tenant:
-- the serving cutoff (the day after the tenant's last event, or var as_of) and earlier
-- training cutoffs every few days, flagged by whether their label windows are complete: enough
-- of them that training_cutoffs + 1 are labelled under the tenant's longest window. Each label
-- flags at most the newest training_cutoffs + 2 cutoffs whose window is complete, so one kind's
-- window (a shop's 91-day churn window) does not reach back into another kind's training data.
{%- set every = var('training_cutoff_every_days') %}
{%- set newest = var('training_cutoffs') + 1 %}
with

activity as (
    select * from {{ ref('int_user_activity__daily') }}
),

bounds as (
    select
        tenant_id,
        min(activity_date) as first_activity_date,
        {% if var('as_of') %}cast('{{ var("as_of") }}' as date){% else %}max(activity_date) + 1{% endif %}
            as serving_cutoff_date
    from activity
    group by tenant_id
),

windows as (
    select * from {{ ref('int_tenant_windows') }}
),

steps as (
    select
        tenant_id,
        label_window_days,
        churn_window_days,
        unnest(range(
            0,
            cast(ceil(
                greatest(label_window_days, churn_window_days, {{ var('engagement_window_days') }})
                / {{ var('training_cutoff_every_days') }}
            ) as integer) + {{ var('training_cutoffs') }} + 1
        )) as k
    from windows
),

cutoffs as (
    select
        bounds.tenant_id,
        bounds.first_activity_date,
        bounds.serving_cutoff_date,
        steps.label_window_days,
        steps.churn_window_days,
        cast(
            bounds.serving_cutoff_date
            - to_days(cast(steps.k * {{ var('training_cutoff_every_days') }} as integer)) as date
        ) as cutoff_date,
        steps.k,
        steps.k = 0 as is_serving
    from bounds
    inner join steps
        on bounds.tenant_id = steps.tenant_id
),

flagged as (
    select
        tenant_id,
        cutoff_date,
        is_serving,
        label_window_days,
        churn_window_days,
        -- complete, and among the newest training_cutoffs + 2 cutoffs whose window is complete
        (
            cutoff_date + label_window_days <= serving_cutoff_date
            and k <= ceil(label_window_days / {{ every }}) + {{ newest }}
        ) as has_ranking_label,
        (
            cutoff_date + churn_window_days <= serving_cutoff_date
            and k <= ceil(churn_window_days / {{ every }}) + {{ newest }}
        ) as has_churn_label,
        (
            cutoff_date + {{ var('engagement_window_days') }} <= serving_cutoff_date
            and k <= ceil({{ var('engagement_window_days') }} / {{ every }}) + {{ newest }}
        ) as has_engagement_label
    from cutoffs
    -- a week of history before any cutoff, so that 7-day features mean something
    where cutoff_date >= first_activity_date + 7 or is_serving
)

select * from flagged
