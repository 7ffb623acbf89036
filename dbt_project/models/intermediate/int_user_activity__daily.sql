{{ config(
    materialized = 'incremental',
    unique_key = ['tenant_id', 'user_id', 'activity_date'],
    incremental_strategy = 'delete+insert',
) }}

with

events as (
    select * from {{ ref('stg_lake__events') }}
    where user_id is not null and event_type <> 'item_published'
    {{ recent_days_only('event_date', 'stg_lake__events.tenant_id') }}
),

daily as (
    select
        tenant_id,
        user_id,
        event_date as activity_date,
        count(*) as events,
        count(*) filter (where is_interaction) as clicks,
        count(*) filter (where event_type = 'view') as views,
        count(*) filter (where event_type = 'complete') as completes,
        count(*) filter (where event_type = 'skip') as skips,
        count(*) filter (where event_type = 'like') as likes,
        coalesce(sum(dwell_seconds) filter (where event_type = 'view'), 0) as dwell_seconds,
        count(distinct session_id) as sessions,
        bool_or(event_type = 'cancel_subscription') as has_cancelled
    from events
    group by tenant_id, user_id, event_date
)

select * from daily
