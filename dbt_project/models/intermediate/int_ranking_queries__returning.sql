-- The recommender's training queries: at each training cutoff, every user who comes back (an
-- interaction) within the longest label window after it (the tenant's own if longer). A
-- tenant's holdout may judge up to that many days after the cutoff (ml.models.ranking), so
-- candidates are generated for these users (int_recommendation_candidates__as_of) and
-- ranking_examples keeps them as queries. Users first seen after the cutoff are here too: they
-- have no candidates, so no examples.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label and not is_serving
),

interactions as (
    select * from {{ ref('stg_lake__events') }}
    where is_interaction and user_id is not null and item_id is not null
)

select distinct
    cutoffs.tenant_id,
    cutoffs.cutoff_date,
    interactions.user_id,
    cutoffs.short_window_days
from cutoffs
inner join interactions
    on cutoffs.tenant_id = interactions.tenant_id
    and cutoffs.cutoff_date <= interactions.event_date
    and interactions.event_date
    < cutoffs.cutoff_date + greatest({{ var('label_window_max_days') }}, cutoffs.label_window_days)
