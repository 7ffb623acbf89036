-- Topic popularity, aggregated only from tenants that share data: each tenant's clicks of its
-- short window (int_tenant_windows) as a weekly rate, so a tenant with a five-week window does
-- not weigh five times. Aggregates, never rows, leave a tenant: this is what a new tenant's cold
-- start can lean on.
with

items as (
    select * from {{ ref('item_features') }}
    where tenant_id in {{ sql_list(var('sharing_tenants')) }} and topic is not null
),

windows as (
    select * from {{ ref('int_tenant_windows') }}
),

by_topic as (
    select
        items.topic,
        sum(items.clicks_short * 7.0 / windows.short_window_days) as weekly_clicks,
        count(distinct items.tenant_id) as contributing_tenants
    from items
    inner join windows
        on items.tenant_id = windows.tenant_id
    group by items.topic
),

shares as (
    select
        topic,
        weekly_clicks,
        contributing_tenants,
        weekly_clicks / nullif(sum(weekly_clicks) over (), 0) as click_share
    from by_topic
)

select * from shares
