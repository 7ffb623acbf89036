-- Point-in-time training examples for the recommender's re-ranker. For each training cutoff C:
-- the candidates generated at C for every user who comes back in the weeks after C,
-- features strictly before C, label = the user clicked that item in the tenant's label window
-- (int_tenant_windows: its setting, or from its activity cadence). Users whose
-- clicks all fall outside their candidates stay in (all labels false): holdout metrics count
-- them as misses, so candidate generation is judged along with the ranker.
with

cutoffs as (
    select * from {{ ref('int_feature_cutoffs') }}
    where has_ranking_label and not is_serving
),

clicks as (
    select * from {{ ref('stg_lake__events') }}
    where is_interaction
),

positives as (
    select distinct
        cutoffs.tenant_id,
        cutoffs.cutoff_date,
        clicks.user_id,
        clicks.item_id
    from cutoffs
    inner join clicks
        on cutoffs.tenant_id = clicks.tenant_id
        and cutoffs.cutoff_date <= clicks.event_date
        and clicks.event_date < cutoffs.cutoff_date + cutoffs.label_window_days
),

clicked_items as (
    select
        tenant_id,
        cutoff_date,
        user_id,
        count(*) as clicked_items
    from positives
    group by tenant_id, cutoff_date, user_id
),

-- the queries: every user who comes back within the longest label window
-- (int_ranking_queries__returning), with the items they clicked in this label window (0 beyond
-- it: training leaves such queries out, having no positive to learn from)
returning_users as (
    select * from {{ ref('int_ranking_queries__returning') }}
),

labelled_users as (
    select
        returning_users.tenant_id,
        returning_users.cutoff_date,
        returning_users.user_id,
        coalesce(clicked_items.clicked_items, 0) as clicked_items
    from returning_users
    left join clicked_items
        on returning_users.tenant_id = clicked_items.tenant_id
        and returning_users.cutoff_date = clicked_items.cutoff_date
        and returning_users.user_id = clicked_items.user_id
),

ranking_features as (
    select * from {{ ref('int_ranking_features__as_of') }}
),

examples as (
    select
        ranking_features.*,
        (positives.item_id is not null) as is_clicked,
        labelled_users.clicked_items as query_clicked_items
    from ranking_features
    inner join labelled_users
        on ranking_features.tenant_id = labelled_users.tenant_id
        and ranking_features.cutoff_date = labelled_users.cutoff_date
        and ranking_features.user_id = labelled_users.user_id
    left join positives
        on ranking_features.tenant_id = positives.tenant_id
        and ranking_features.cutoff_date = positives.cutoff_date
        and ranking_features.user_id = positives.user_id
        and ranking_features.item_id = positives.item_id
)

-- stored in tenant order: DuckDB's zone maps then skip other tenants' row groups when
-- training snapshots, checks and scoring read one tenant
select * from examples
order by tenant_id
