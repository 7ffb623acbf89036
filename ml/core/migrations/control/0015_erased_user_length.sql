-- The length (in characters) of an erased user's id, beside its keyed hash (ml.core.erased_users): a re-sent
-- malformed line names no user_id field, so ingestion and a history import hash each of its whole tokens of an
-- erased id's length and drop the line when one is a tombstone. Null: a tombstone recorded before it was kept
-- (it matches rows only, until erasing the user again records the length).
alter table erased_users add column id_length integer
