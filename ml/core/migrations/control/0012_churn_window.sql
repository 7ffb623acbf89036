-- A tenant's churn window in days (a user churns who cancels, or is not seen, within it after a
-- cutoff). Null: derived from the tenant's activity cadence at each feature build (int_tenant_windows).
alter table tenants add column churn_window_days integer
