-- "split" named two things (the time holdout and the A/B traffic split): the table says which.
alter table serving_splits rename to traffic_splits;
