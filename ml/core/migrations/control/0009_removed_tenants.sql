-- A removed tenant's id is never reused (a new company under it would inherit its keys, models
-- and data). Region and tier say where a later purge finds its data.
create table removed_tenants (
    tenant_id text primary key,
    region text not null,
    isolation text not null,
    share_data integer not null,
    removed_at text not null,
    purged_at text
)
;
-- Models that learned from erased data: the next train run retrains each (reason 'erasure'),
-- whether or not its snapshot changed. owner: a tenant id, or global.<region>.
create table erasure_retrains (
    id integer primary key autoincrement,
    owner text not null,
    kind text not null,
    requested_at text not null,
    why text not null,
    done_at text
)
