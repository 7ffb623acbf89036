-- How a drift retrain ended for its tenant, per model kind, as the train run's report closed it
-- (ml.monitoring.decisions.close_requests): e.g. "recommender v2 refused: challenger" or
-- "recommender v3 promoted". Null for requests closed before this column, and while open.
alter table retrain_requests add column outcome text
