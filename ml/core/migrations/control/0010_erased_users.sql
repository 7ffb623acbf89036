-- Tombstones of erased end users (ml.core.erased_users): a keyed hash per tenant and user, never
-- the id. Ingestion drops a re-sent row of such a user (dropped["erased_user"]).
create table erased_users (
    tenant_id text not null,
    user_hash text not null,
    erased_at text not null,
    primary key (tenant_id, user_hash)
) without rowid
