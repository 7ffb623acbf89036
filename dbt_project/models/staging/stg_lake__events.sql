with

source as (
    select * from {{ source('lake', 'events') }}
),

renamed as (
    select
        tenant_id,
        event_id,
        user_id,
        item_id,
        event_type,
        event_at,
        cast(event_at as date) as event_date,
        -- the lake's partition key; date is a keyword, so quoted
        cast("date" as date) as landed_on,  -- noqa: RF06
        session_id,
        dwell_seconds,
        topic as published_topic,
        device,
        value,
        quantity,
        price,
        {{ is_interaction_type('tenant_id', 'event_type') }} as is_consumed,
        {{ is_interaction_type('tenant_id', 'event_type') }}
        and not {{ below_min_rating('tenant_id', 'event_type', 'value') }} as is_interaction,
        region
    from source
    where tenant_id in {{ sql_list(var('tenants')) }}
)

select * from renamed
