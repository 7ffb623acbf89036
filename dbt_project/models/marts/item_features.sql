with

as_of as (
    select * from {{ ref('int_item_features__as_of') }}
),

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where is_serving
),

serving as (
    select as_of.*
    from as_of
    inner join cutoffs
        on cutoffs.tenant_id = as_of.tenant_id
        and cutoffs.cutoff_date = as_of.cutoff_date
)

select * from serving
