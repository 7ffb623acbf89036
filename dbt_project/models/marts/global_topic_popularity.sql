-- Topic popularity over each contributing tenant's short window (int_tenant_windows), aggregated
-- only from tenants that share data.
-- Aggregates, never rows, leave a tenant: this is what a new tenant's cold start can lean on.
with

items as (
    select * from {{ ref('item_features') }}
    where tenant_id in {{ sql_list(var('sharing_tenants')) }} and topic is not null
),

by_topic as (
    select
        topic,
        {{ sum_count('clicks_short') }} as clicks_short,
        count(distinct tenant_id) as contributing_tenants
    from items
    group by topic
),

shares as (
    select
        topic,
        clicks_short,
        contributing_tenants,
        clicks_short / nullif(sum(clicks_short) over (), 0) as click_share_short
    from by_topic
)

select * from shares
