-- The dates features are computed "as of" (everything strictly before the cutoff), per tenant:
-- the serving cutoff (the day after the tenant's last event, or var as_of) and earlier
-- training cutoffs every few days, flagged by the kinds whose examples they label (macro
-- label_complete): under each kind's label window, the newest cutoff whose window is complete
-- (the holdout), the training_cutoffs + 1 whose windows end by the holdout's cutoff (purged), and
-- the training_cutoffs + 1 counting back from the holdout's, which the winner is refitted on for
-- serving (as many as it trained on: fewer where history is short).
-- Cutoffs no kind labels are left out: nothing would read their features.
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
        feature_window_days,
        short_window_days,
        -- engagement's label window is the short feature window
        unnest(
            range(0, {{ label_complete_steps('greatest(label_window_days, churn_window_days, short_window_days)') }})
        )
            as k
    from windows
),

cutoffs as (
    select
        bounds.tenant_id,
        bounds.first_activity_date,
        bounds.serving_cutoff_date,
        steps.label_window_days,
        steps.churn_window_days,
        steps.feature_window_days,
        steps.short_window_days,
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
        feature_window_days,
        short_window_days,
        {{ label_complete('label_window_days') }} as has_ranking_label,
        {{ label_complete('churn_window_days') }} as has_churn_label,
        {{ label_complete('short_window_days') }} as has_engagement_label
    from cutoffs
    -- a week of history before any cutoff, so that recent features mean something (a young
    -- tenant's longer windows fill as it ages, at every window length)
    where cutoff_date >= first_activity_date + 7 or is_serving
)

select * from flagged
where is_serving or has_ranking_label or has_churn_label or has_engagement_label
