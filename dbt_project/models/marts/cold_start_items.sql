-- What a user we know nothing about is shown: the tenant's popular and trending items.
with

items as (
    select * from {{ ref('item_features') }}
),

popular as (
    select
        tenant_id,
        'popular' as list_kind,
        item_id,
        row_number() over (partition by tenant_id order by clicks_short desc, item_id asc) as list_rank,
        cast(clicks_short as double) as score
    from items
),

trending as (
    select
        tenant_id,
        'trending' as list_kind,
        item_id,
        row_number() over (partition by tenant_id order by trending_score desc, item_id asc) as list_rank,
        trending_score as score
    from items
    where clicks_1d >= 3
),

lists as (
    select * from popular
    where list_rank <= 50
    union all
    select * from trending
    where list_rank <= 50
)

select * from lists
