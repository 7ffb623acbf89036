{% macro window_from_cadence(cadence, gaps, min_days, max_days) -%}
    {#- Whole weeks covering `gaps` of a tenant's typical gaps between active days (`cadence`, in
        days), within min_days..max_days; min_days without a cadence (nobody came back).
        int_tenant_windows: the recommender's window covers two gaps, churn's three, the long
        feature window four. -#}
    coalesce(least({{ max_days }}, greatest({{ min_days }}, 7 * ceil({{ gaps }} * {{ cadence }} / 7))), {{ min_days }})::integer
{%- endmacro %}

{% macro label_complete(days) -%}
    {#- In int_feature_cutoffs: the cutoff is labelled under a label window of `days`. The holdout is
        the newest cutoff whose window is complete, h = ceil(days / training_cutoff_every_days)
        steps back. Training takes the training_cutoffs + 1 cutoffs from 2 h steps back: their
        windows end by the holdout's cutoff, so no training label overlaps what the holdout judges
        (purging: ml.models.fit.time_holdout). The winner is then refitted for serving on the
        training_cutoffs + 1 newest complete cutoffs, from the holdout's back (ml.models.refit).
        Other cutoffs are not labelled, and one kind's long window (a shop's 91-day churn window)
        does not reach into another kind's training data. -#}
    {%- set h = 'ceil(' ~ days ~ ' / ' ~ var('training_cutoff_every_days') ~ ')' -%}
    (
        k between {{ h }} and {{ h }} + {{ var('training_cutoffs') }}
        or k between 2 * {{ h }} and 2 * {{ h }} + {{ var('training_cutoffs') }}
    )
{%- endmacro %}

{% macro label_complete_steps(days) -%}
    {#- How many cutoff steps back label_complete(days) reaches, plus one (the serving cutoff). -#}
    cast(2 * ceil({{ days }} / {{ var('training_cutoff_every_days') }}) as integer) + {{ var('training_cutoffs') }} + 1
{%- endmacro %}
