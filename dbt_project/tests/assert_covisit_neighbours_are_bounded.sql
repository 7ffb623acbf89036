-- Each item keeps at most `covisits_per_item` co-visited neighbours per cutoff. Without the
-- bound, candidate generation fans every user's recent clicks out into all co-clicked items
-- (~1e9 rows at 14k users per tenant) and the warehouse build runs out of memory.
select
    tenant_id,
    cutoff_date,
    item_id,
    count(*) as neighbours
from {{ ref('int_item_covisits__as_of') }}
group by tenant_id, cutoff_date, item_id
having count(*) > {{ var('covisits_per_item') }}
