-- How a drift retrain ended for its tenant, per model kind, as the train run's report closed it
-- (ml.monitoring.decisions.outcome): e.g. "recommender v2 refused (kept as challenger): <the gate's
-- reason>" or "churn skipped: <why>". Null for requests closed before this column, and while open.
alter table retrain_requests add column outcome text
