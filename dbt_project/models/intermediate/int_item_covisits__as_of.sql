-- Item pairs clicked in the same session in the 28 days before each cutoff (point in time):
-- the "people who clicked this also clicked" signal behind co-visitation candidates. Each item
-- keeps only its strongest neighbours: a popular item is co-clicked with most of the
-- catalogue, and every user who clicked it would otherwise fan out into all of them.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label or is_serving
),

clicks as (
    select distinct tenant_id, session_id, item_id, event_date
    from {{ ref('stg_lake__events') }}
    where event_type = 'click' and session_id is not null and item_id is not null
),

covisits as (
    select
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        clicked.item_id,
        also_clicked.item_id as covisited_item_id,
        count(distinct clicked.session_id) as sessions_28d
    from cutoffs
    inner join clicks as clicked
        on clicked.tenant_id = cutoffs.tenant_id
        and clicked.event_date < cutoffs.cutoff_date
        and clicked.event_date >= cutoffs.cutoff_date - 28
    inner join clicks as also_clicked
        on also_clicked.tenant_id = clicked.tenant_id
        and also_clicked.session_id = clicked.session_id
        and also_clicked.item_id <> clicked.item_id
        and also_clicked.event_date < cutoffs.cutoff_date
    group by cutoffs.tenant_id, cutoffs.cutoff_date, clicked.item_id, also_clicked.item_id
    qualify row_number() over (
        partition by cutoffs.tenant_id, cutoffs.cutoff_date, clicked.item_id
        order by count(distinct clicked.session_id) desc, also_clicked.item_id
    ) <= {{ var('covisits_per_item') }}
)

select * from covisits
