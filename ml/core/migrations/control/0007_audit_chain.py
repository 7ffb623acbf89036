"""The audit log becomes append-only and hash-chained (``ml.core.audit``): ``model_audit``'s rows
are carried over, oldest first, as the chain's first entries (subject the model kind; versions and
reason in ``detail``), and the old table is dropped."""

import hashlib
import json

GENESIS = "0" * 64


def upgrade(con):
    con.execute(
        """create table audit_log (
            id integer primary key,
            at text not null,
            actor text not null,
            tenant_id text not null,
            action text not null,
            subject text not null,
            detail text not null,
            prev_hash text not null,
            hash text not null unique
        )"""
    )
    con.execute("create index audit_log_tenant on audit_log (tenant_id, subject)")
    for verb in ("update", "delete"):
        con.execute(
            f"create trigger audit_log_no_{verb} before {verb} on audit_log "
            f"begin select raise(abort, 'the audit log is append-only'); end"
        )
    prev = GENESIS
    rows = con.execute(
        "select at, actor, kind, tenant_id, action, from_version, to_version, reason from model_audit order by id"
    ).fetchall()
    for number, (at, actor, kind, tenant, action, from_v, to_v, reason) in enumerate(rows, start=1):
        detail = json.dumps(
            {"from_version": from_v, "to_version": to_v, "reason": reason}, sort_keys=True, separators=(",", ":")
        )
        body = json.dumps([number, at, actor, tenant, action, kind, detail, prev], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        con.execute(
            "insert into audit_log values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, at, actor, tenant, action, kind, detail, prev, digest),
        )
        prev = digest
    con.execute("drop table model_audit")
