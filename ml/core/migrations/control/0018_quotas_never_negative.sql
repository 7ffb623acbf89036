-- A quota is a whole number, 0 or more (ml.core.tenant_fields.quota): 0 refuses every webhook event
-- (quota_events_per_day) or API request (quota_requests_per_minute). Entries stored before the check
-- could hold a negative quota, which refused them all as 0 does: stored as 0, the same behaviour.
update tenants set quota_events_per_day = 0 where quota_events_per_day < 0;
update tenants set quota_requests_per_minute = 0 where quota_requests_per_minute < 0
