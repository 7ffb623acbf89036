-- A tenant's recommendation label window in days (the holdout the recommender's candidates are
-- judged on). Null: derived from the tenant's activity cadence at each training.
alter table tenants add column label_window_days integer
