{{ config(
    materialized = 'incremental',
    unique_key = ['tenant_id', 'item_id', 'activity_date'],
    incremental_strategy = 'delete+insert',
) }}

with

events as (
    select * from {{ ref('stg_lake__events') }}
    where item_id is not null and event_type <> 'item_published'
    {% if is_incremental() %}
        and event_date >= (
            select {% if var('rebuild_from') %}least(cast('{{ var("rebuild_from") }}' as date), max(activity_date)){% else %}max(activity_date){% endif %}
            from {{ this }}
        ) - interval 7 day
    {% endif %}
),

daily as (
    select
        tenant_id,
        item_id,
        event_date as activity_date,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'complete') as completes,
        count(*) filter (where event_type = 'skip') as skips,
        count(*) filter (where event_type = 'like') as likes,
        count(distinct user_id) as users
    from events
    group by tenant_id, item_id, event_date
)

select * from daily
