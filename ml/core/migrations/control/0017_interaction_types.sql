-- The event types that are a tenant's positive interactions, comma-separated in the landing
-- contract's order (ml.core.contract.POSITIVE_EVENT_TYPES: e.g. a news site's view, a catalogue's
-- like): what recommenders learn from and are judged on, and what the user consumed (dbt var
-- interaction_types, stg_lake__events.is_consumed). Null or empty: the platform's
-- (ml.core.contract.INTERACTION_EVENT_TYPES: click, purchase, add_to_cart, rating).
alter table tenants add column interaction_types text
