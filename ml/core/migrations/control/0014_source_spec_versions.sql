-- Every source spec a tenant's landed files were read with, by content id (ml.data.ingest.spec.spec_id): a day
-- ingested again reads each landed file with the spec it was read with before (its manifest names the id), so a
-- new spec for a tenant's exports never re-reads files sent in an earlier format.
create table source_spec_versions (
    tenant_id text not null,
    spec_id text not null,
    spec text not null,
    first_used_at text not null,
    primary key (tenant_id, spec_id)
);
