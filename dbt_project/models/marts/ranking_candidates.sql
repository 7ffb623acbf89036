-- What the re-ranker scores today: every user with history, their candidates at the serving cutoff, with
-- the same feature columns as ranking_examples. Batch scoring and the API's snapshots read it.
{{ at_serving_cutoff(ref('int_ranking_features__as_of')) }}
