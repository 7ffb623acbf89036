-- What churn means for each tenant: a subscription product that sends cancel_subscription events
-- churns by cancelling; any other (a shop, a ratings site, a click-only feed) by inactivity, no
-- event at all in the churn window after a cutoff (the non-contractual definition). A tenant's
-- first cancellation switches it to the first.
with

tenants as (
    select distinct tenant_id from {{ ref('int_user_activity__daily') }}
),

cancelling as (
    select distinct tenant_id from {{ ref('int_user_activity__daily') }}
    where has_cancelled
)

select
    tenants.tenant_id,
    case when cancelling.tenant_id is null then 'inactivity' else 'cancellation' end as churn_definition
from tenants
left join cancelling
    on tenants.tenant_id = cancelling.tenant_id
