{% macro window_from_cadence(cadence, gaps, min_days, max_days) -%}
    {#- Whole weeks covering `gaps` of a tenant's typical gaps between active days (`cadence`, in
        days), within min_days..max_days; min_days without a cadence (nobody came back).
        int_tenant_windows: the recommender's window covers two gaps, churn's three, the long
        feature window four. -#}
    coalesce(least({{ max_days }}, greatest({{ min_days }}, 7 * ceil({{ gaps }} * {{ cadence }} / 7))), {{ min_days }})::integer
{%- endmacro %}

{% macro label_complete(days) -%}
    {#- In int_feature_cutoffs: the cutoff's label window of `days` is complete, and the cutoff is
        among the newest training_cutoffs + 2 whose window is, so one kind's long window (a shop's
        91-day churn window) does not reach back into another kind's training data. -#}
    (
        cutoff_date + {{ days }} <= serving_cutoff_date
        and k <= ceil({{ days }} / {{ var('training_cutoff_every_days') }}) + {{ var('training_cutoffs') }} + 1
    )
{%- endmacro %}
