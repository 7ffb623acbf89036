-- Every user's whole interaction history before the serving cutoff, one row per user, item and
-- day (its positive interactions; 0 for a day the user only consumed the item): what the classic
-- recommender families (popularity, item-kNN, SAR, EASE, ALS in ml.models.recsys) learn from and
-- score a user by, and what the exclude policy never recommends back. Training splits it at its
-- holdout's start; the API and batch scoring read the user's rows as of the serving cutoff.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where is_serving
),

-- every consumption: a day with none positive (a rating below the tenant's min_rating) is a row of
-- 0 interactions, so the item is never recommended back under the exclude policy
interactions as (
    select * from {{ ref('stg_lake__events') }}
    where is_consumed and user_id is not null and item_id is not null
),

daily as (
    select
        interactions.tenant_id,
        interactions.user_id,
        interactions.item_id,
        interactions.event_date,
        cutoffs.cutoff_date,
        cutoffs.cutoff_date - interactions.event_date as days_before_cutoff,
        count(*) filter (where interactions.is_interaction) as interactions
    from interactions
    inner join cutoffs
        on interactions.tenant_id = cutoffs.tenant_id
        and interactions.event_date < cutoffs.cutoff_date
    group by all
)

-- tenant order: zone maps skip other tenants' row groups on per-tenant reads
select * from daily
order by tenant_id
