-- The control plane's tables as they stood before versioned migrations (each `if not exists`,
-- so a home created by an older Tenantflow upgrades in place).
create table if not exists tenants (
    tenant_id text primary key,
    display_name text not null,
    region text not null,
    isolation text not null check (isolation in ('pool', 'silo')),
    share_data integer not null,
    onboarded_at text not null,
    model_kinds text not null,
    quota_events_per_day integer not null,
    quota_requests_per_minute integer not null
);

create table if not exists api_keys (
    key_id text primary key,
    tenant_id text not null,
    key_hash text not null,
    label text not null default '',
    created_at text not null,
    revoked_at text
);
create index if not exists api_keys_tenant on api_keys (tenant_id);

create table if not exists model_audit (
    id integer primary key autoincrement,
    at text not null,
    actor text not null,
    kind text not null,
    tenant_id text not null,
    action text not null,
    from_version text,
    to_version text,
    reason text not null
);

create table if not exists monitor_policies (
    tenant_id text primary key,
    overrides text not null
);

create table if not exists retrain_requests (
    id integer primary key autoincrement,
    tenant_id text not null,
    kinds text not null,
    requested_at text not null,
    monitor_run text not null,
    train_run_id text not null,
    reason text not null,
    report_paths text not null,
    status text not null check (status in ('requested', 'done', 'failed')),
    closed_at text
);
create index if not exists retrain_requests_tenant on retrain_requests (tenant_id, status);

create table if not exists serving_splits (
    tenant_id text not null,
    kind text not null,
    challenger_percent real not null check (challenger_percent >= 0 and challenger_percent <= 100),
    updated_at text not null,
    primary key (tenant_id, kind)
);
