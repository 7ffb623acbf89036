-- The tenant's catalogue. A tenant that sends item_published events (a content platform) has
-- the items it published, with their topic and time. A tenant that sends none (a shop exports
-- only what users did) has every item users interacted with, from the day of its first
-- activity, without a topic.
with

published as (
    select
        tenant_id,
        item_id,
        arg_min(published_topic, event_at) as topic,
        min(event_at) as published_at
    from {{ ref('stg_lake__events') }}
    where event_type = 'item_published'
    group by tenant_id, item_id
),

publishing_tenants as (
    select distinct tenant_id from published
),

first_active as (
    select
        tenant_id,
        item_id,
        cast(null as varchar) as topic,
        cast(min(activity_date) as timestamp) as published_at
    from {{ ref('int_item_activity__daily') }}
    where tenant_id not in (select publishing_tenants.tenant_id from publishing_tenants)
    group by tenant_id, item_id
),

catalogued as (
    select * from published
    union all
    select * from first_active
)

select * from catalogued
