-- A tenant's counts are whole numbers (ml.core.tenant_fields.whole_number) and a quota is 0 or more
-- (ml.core.tenant_fields.quota: 0 refuses every webhook event, quota_events_per_day, or API request,
-- quota_requests_per_minute). Entries stored before the checks (by a Python caller) could hold a fraction
-- (2.5, which admitted 2 events a day), a negative quota (which refused them all, as 0 does) or a value
-- that is no number (text, which no request could be judged against): stored as the whole number below
-- the fraction, as 0, and as the platform's default (a quota) or unset (a window), so that every entry
-- reads and one bad row never stops the listing of every tenant.
update tenants set quota_events_per_day = cast(quota_events_per_day as integer) where typeof(quota_events_per_day) = 'real';
update tenants set quota_requests_per_minute = cast(quota_requests_per_minute as integer) where typeof(quota_requests_per_minute) = 'real';
update tenants set label_window_days = cast(label_window_days as integer) where typeof(label_window_days) = 'real';
update tenants set churn_window_days = cast(churn_window_days as integer) where typeof(churn_window_days) = 'real';
update tenants set feature_window_days = cast(feature_window_days as integer) where typeof(feature_window_days) = 'real';
update tenants set quota_events_per_day = 5000000 where typeof(quota_events_per_day) not in ('integer', 'real');
update tenants set quota_requests_per_minute = 6000 where typeof(quota_requests_per_minute) not in ('integer', 'real');
update tenants set label_window_days = null where typeof(label_window_days) not in ('integer', 'real', 'null');
update tenants set churn_window_days = null where typeof(churn_window_days) not in ('integer', 'real', 'null');
update tenants set feature_window_days = null where typeof(feature_window_days) not in ('integer', 'real', 'null');
update tenants set quota_events_per_day = 0 where quota_events_per_day < 0;
update tenants set quota_requests_per_minute = 0 where quota_requests_per_minute < 0
