-- Each tenant's windows, in days. Label windows, after a cutoff: the recommender's (whose
-- interactions label its candidates: ranking_examples, and the competition holdout of
-- ml.models.ranking) and churn's (who cancels, or is not seen, within it has churned:
-- churn_examples, and the churn model's live metrics). Feature windows, before a cutoff: the
-- long one (the *_long columns of the feature models: counts, rates, topic affinity,
-- co-visitation) and the short one (the *_short columns: recent activity, the popular and
-- trending candidates, the cold-start list), which is also engagement's label window (sessions
-- in the next short window, against the last one's). The tenant's registry setting wins (vars
-- label_windows, churn_windows, feature_windows, set by ml.data.dbt.dbt_vars); unset, each
-- follows the tenant's activity cadence: the median, over users who interacted on two days or
-- more before the serving cutoff, of each user's median days between those days.
--   recommender: whole weeks covering two such gaps, label_window_min_days..label_window_max_days
--     (a daily content platform: 7; a shop customers visit monthly: 28), so the users who come
--     back in it are not a small, unusual few;
--   churn: whole weeks covering three gaps, churn_window_days..churn_window_max_days (14 to 91: a
--     quarter, retail's usual "no purchase in 90 days"); a user who keeps the typical cadence is
--     unseen for three gaps about 5% of the time (e^-3, were gaps exponential), where a fixed 14
--     days would call most of a monthly shop's customers churned;
--   feature (long): whole weeks covering four gaps, feature_window_min_days..feature_window_max_days
--     (28 to 182), so a typical user has several active days in it rather than one or none (a
--     daily platform: 28; a monthly shop: 126); short: a quarter of it in whole weeks, at least 7
--     (7 and 35), about one gap: what the user did lately. A daily platform keeps the 7 and 28
--     days the feature set was designed on.
-- (built after the daily item activity too: the rule it records is the one both daily models last
-- counted with, which their pre-hook compares: macro tenants_with_a_new_interaction_rule)
-- depends_on: {{ ref('int_item_activity__daily') }}
with

active_days as (
    select
        tenant_id,
        user_id,
        activity_date
    from {{ ref('int_user_activity__daily') }}
    where clicks > 0
    {% if var('as_of') %}and activity_date < cast('{{ var("as_of") }}' as date){% endif %}
),

gaps as (
    select
        tenant_id,
        user_id,
        activity_date - lag(activity_date) over (
            partition by tenant_id, user_id order by activity_date
        ) as gap_days
    from active_days
),

user_cadences as (
    select
        tenant_id,
        user_id,
        median(gap_days) as cadence_days
    from gaps
    where gap_days is not null
    group by tenant_id, user_id
),

tenants as (
    select distinct tenant_id from {{ ref('int_user_activity__daily') }}
),

cadences as (
    select
        tenants.tenant_id,
        median(user_cadences.cadence_days) as cadence_days
    from tenants
    left join user_cadences
        on tenants.tenant_id = user_cadences.tenant_id
    group by tenants.tenant_id
),

settings as (
    -- the tenants whose registry sets a window (an empty typed row keeps the union valid)
    {%- set label_windows, churn_windows = var('label_windows'), var('churn_windows') %}
    {%- set feature_windows = var('feature_windows') %}
    select
        null::varchar as tenant_id,
        null::integer as label_window_days,
        null::integer as churn_window_days,
        null::integer as feature_window_days
    where false
    {%- for tenant in (
        (label_windows.keys() | list) + (churn_windows.keys() | list) + (feature_windows.keys() | list)
    ) | unique %}
    union all select
        '{{ tenant }}',
        {{ label_windows.get(tenant) or 'null' }},
        {{ churn_windows.get(tenant) or 'null' }},
        {{ feature_windows.get(tenant) or 'null' }}
    {%- endfor %}
),

derived as (
    select
        cadences.tenant_id,
        cadences.cadence_days,
        settings.label_window_days as label_window_setting,
        settings.churn_window_days as churn_window_setting,
        settings.feature_window_days as feature_window_setting,
        {{ window_from_cadence(
            'cadences.cadence_days', 2, var('label_window_min_days'), var('label_window_max_days')
        ) }} as label_window_cadence,
        {{ window_from_cadence(
            'cadences.cadence_days', 3, var('churn_window_days'), var('churn_window_max_days')
        ) }} as churn_window_cadence,
        {{ window_from_cadence(
            'cadences.cadence_days', 4, var('feature_window_min_days'), var('feature_window_max_days')
        ) }} as feature_window_cadence
    from cadences
    left join settings
        on cadences.tenant_id = settings.tenant_id
),

windows as (
    select
        tenant_id,
        cadence_days,
        coalesce(label_window_setting, label_window_cadence) as label_window_days,
        case when label_window_setting is null then 'cadence' else 'setting' end as label_window_source,
        coalesce(churn_window_setting, churn_window_cadence) as churn_window_days,
        case when churn_window_setting is null then 'cadence' else 'setting' end as churn_window_source,
        coalesce(feature_window_setting, feature_window_cadence) as feature_window_days,
        case when feature_window_setting is null then 'cadence' else 'setting' end as feature_window_source
    from derived
)

select
    *,
    greatest(7, 7 * round(feature_window_days / 28))::integer as short_window_days,
    -- the rule the snapshot's interactions were counted with (vars min_ratings, interaction_types):
    -- version tags, so a change makes the tenant's models due (ml.models.due)
    {{ min_rating_text('tenant_id') }} as min_rating,
    {{ interaction_types_text('tenant_id') }} as interaction_types
from windows
