-- A tenant's source spec (ml.data.ingest.spec): how its exports map onto the landing contract,
-- as JSON. No row: the landing contract as is.
create table source_specs (
    tenant_id text primary key,
    spec text not null,
    updated_at text not null
);
