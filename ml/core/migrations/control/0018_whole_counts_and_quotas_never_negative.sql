-- A tenant's counts are whole numbers (ml.core.tenant_fields.whole_number) and a quota is 0 or more
-- (ml.core.tenant_fields.quota: 0 refuses every webhook event, quota_events_per_day, or API request,
-- quota_requests_per_minute). Entries stored before the checks could hold a fraction (a Python caller's
-- 2.5, which admitted 2 events a day) or a negative quota (which refused them all, as 0 does): stored
-- as the whole number below the fraction and as 0, the same behaviour, so that every entry reads.
update tenants set quota_events_per_day = cast(quota_events_per_day as integer) where typeof(quota_events_per_day) = 'real';
update tenants set quota_requests_per_minute = cast(quota_requests_per_minute as integer) where typeof(quota_requests_per_minute) = 'real';
update tenants set label_window_days = cast(label_window_days as integer) where typeof(label_window_days) = 'real';
update tenants set churn_window_days = cast(churn_window_days as integer) where typeof(churn_window_days) = 'real';
update tenants set feature_window_days = cast(feature_window_days as integer) where typeof(feature_window_days) = 'real';
update tenants set quota_events_per_day = 0 where quota_events_per_day < 0;
update tenants set quota_requests_per_minute = 0 where quota_requests_per_minute < 0
