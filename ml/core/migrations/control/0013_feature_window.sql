-- A tenant's long feature window in days: the *_long feature columns count the days within it
-- before a cutoff, the *_short ones a quarter of it. Null: derived from the tenant's activity
-- cadence at each feature build (int_tenant_windows).
alter table tenants add column feature_window_days integer
