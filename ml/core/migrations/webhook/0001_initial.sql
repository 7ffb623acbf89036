-- The webhook's idempotency ledger: every accepted event id with the hash of its body, and the
-- events accepted per tenant and day (the daily quota).
create table if not exists api_events (
    tenant_id text not null,
    event_id text not null,
    body_hash text not null,
    receipt_id text not null,
    received_at text not null,
    landing_file text not null,
    primary key (tenant_id, event_id)
) without rowid;

create table if not exists api_event_days (
    tenant_id text not null,
    day text not null,
    accepted integer not null,
    primary key (tenant_id, day)
) without rowid;
