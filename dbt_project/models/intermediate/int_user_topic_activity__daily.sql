with

clicks as (
    select * from {{ ref('stg_lake__events') }}
    where is_interaction
),

items as (
    -- items without a topic (a shop's, seen only in activity) have no topic to be affine to
    select * from {{ ref('int_items__catalogued') }}
    where topic is not null
),

daily as (
    select
        clicks.tenant_id,
        clicks.user_id,
        items.topic,
        clicks.event_date as activity_date,
        count(*) as clicks
    from clicks
    inner join items
        on clicks.tenant_id = items.tenant_id
        and clicks.item_id = items.item_id
    group by clicks.tenant_id, clicks.user_id, items.topic, clicks.event_date
)

select * from daily
