-- Residency: which region's global model serves and fine-tunes a tenant. Null: its own region's.
-- Another region is an explicit opt-in (that region's learned parameters reach this tenant's
-- models, while this tenant's data never leaves its region).
alter table tenants add column global_region text
