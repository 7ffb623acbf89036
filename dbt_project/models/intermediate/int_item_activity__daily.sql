{{ config(
    materialized = 'incremental',
    unique_key = ['tenant_id', 'item_id', 'activity_date'],
    incremental_strategy = 'delete+insert',
    pre_hook = "{{ forget_days_read_again('activity_date') }}",
) }}

with

events as (
    select * from {{ ref('stg_lake__events') }}
    -- an order's charge lines (postage, fees) are not items
    where item_id is not null and event_type not in ('item_published', 'charge')
    {{ recent_days_only('event_date', 'stg_lake__events.tenant_id') }}
),

daily as (
    select
        tenant_id,
        item_id,
        event_date as activity_date,
        count(*) filter (where is_interaction) as clicks,
        count(*) filter (where event_type = 'complete') as completes,
        count(*) filter (where event_type = 'skip') as skips,
        count(*) filter (where event_type = 'like') as likes,
        count(distinct user_id) as users
    from events
    group by tenant_id, item_id, event_date
)

select * from daily
