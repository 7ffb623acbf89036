-- The lowest rating that is a positive interaction for a tenant (a rating event's value): a rating
-- below it is consumed (never recommended back under the exclude policy) but nothing the
-- recommenders learn from or are judged on (dbt var min_ratings, stg_lake__events.is_interaction).
-- Null: every rating is a positive interaction.
alter table tenants add column min_rating real
