with

published as (
    select * from {{ ref('stg_lake__events') }}
    where event_type = 'item_published'
),

catalogued as (
    select
        tenant_id,
        item_id,
        arg_min(published_topic, event_at) as topic,
        min(event_at) as published_at
    from published
    group by tenant_id, item_id
)

select * from catalogued
