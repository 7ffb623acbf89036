-- Item pairs clicked in the same session in the tenant's long feature window before each cutoff
-- (int_tenant_windows; point in time):
-- the "people who clicked this also clicked" signal behind co-visitation candidates. Each item
-- keeps only its strongest neighbours among the items of the catalogue as of the cutoff: a
-- popular item is co-clicked with most of the catalogue, and every user who clicked it would
-- otherwise fan out into all of them.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label or is_serving
),

-- one row per item clicked in a session, dated by its first click there: each co-clicked pair
-- then appears once per session, so counting sessions needs no count(distinct) (a third of
-- this model's time)
clicks as (
    select
        tenant_id,
        session_id,
        item_id,
        min(event_date) as event_date
    from {{ ref('stg_lake__events') }}
    where is_interaction and session_id is not null and item_id is not null
    group by tenant_id, session_id, item_id
),

covisits as (
    select
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        clicked.item_id,
        also_clicked.item_id as covisited_item_id,
        count(*) as sessions_long
    from cutoffs
    inner join clicks as clicked
        on cutoffs.tenant_id = clicked.tenant_id
        and cutoffs.cutoff_date > clicked.event_date
        and clicked.event_date >= cutoffs.cutoff_date - cutoffs.feature_window_days
    inner join clicks as also_clicked
        on clicked.tenant_id = also_clicked.tenant_id
        and clicked.session_id = also_clicked.session_id
        and clicked.item_id <> also_clicked.item_id
        and cutoffs.cutoff_date > also_clicked.event_date
    group by cutoffs.tenant_id, cutoffs.cutoff_date, clicked.item_id, also_clicked.item_id
),

-- neighbours are items of the catalogue as of the cutoff (the ones that can be recommended)
catalogued as (
    select covisits.*
    from covisits
    inner join {{ ref('int_item_features__as_of') }} as items
        on covisits.tenant_id = items.tenant_id
        and covisits.cutoff_date = items.cutoff_date
        and covisits.covisited_item_id = items.item_id
    qualify row_number() over (
            partition by covisits.tenant_id, covisits.cutoff_date, covisits.item_id
            order by covisits.sessions_long desc, covisits.covisited_item_id asc
        ) <= {{ var('covisits_per_item') }}
)

select * from catalogued
