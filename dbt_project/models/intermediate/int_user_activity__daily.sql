{{ config(
    materialized = 'incremental',
    unique_key = ['tenant_id', 'user_id', 'activity_date'],
    incremental_strategy = 'delete+insert',
    pre_hook = "{{ forget_days_read_again('activity_date') }}",
) }}

with

events as (
    select * from {{ ref('stg_lake__events') }}
    -- what users did: an order's charge lines (postage, fees) are not an action of their own
    where user_id is not null and event_type not in ('item_published', 'charge')
    {{ recent_days_only('event_date', 'stg_lake__events.tenant_id') }}
),

-- Sessions of events sent without a session id: a new one starts after 30 minutes without an
-- event of the user (the web-analytics rule; Google Analytics' default session timeout), and at
-- midnight UTC, as a day's sessions are counted here.
sessionized as (
    select
        *,
        session_id is null
        and coalesce(
            epoch(event_at) - epoch(lag(event_at) over (
                partition by tenant_id, user_id, event_date, session_id is null order by event_at
            )) > {{ var('session_timeout_minutes') }} * 60,
            true
        ) as starts_derived_session
    from events
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
        count(distinct session_id) + count(*) filter (where starts_derived_session) as sessions,
        bool_or(event_type = 'cancel_subscription') as has_cancelled
    from sessionized
    group by tenant_id, user_id, event_date
)

select * from daily
