-- Topic popularity over the last 7 days, aggregated only from tenants that share data.
-- Aggregates, never rows, leave a tenant: this is what a new tenant's cold start can lean on.
with

items as (
    select * from {{ ref('item_features') }}
    where tenant_id in {{ sql_list(var('sharing_tenants')) }} and topic is not null
),

by_topic as (
    select
        topic,
        {{ sum_count('clicks_7d') }} as clicks_7d,
        count(distinct tenant_id) as contributing_tenants
    from items
    group by topic
),

shares as (
    select
        topic,
        clicks_7d,
        contributing_tenants,
        clicks_7d / nullif(sum(clicks_7d) over (), 0) as click_share_7d
    from by_topic
)

select * from shares
