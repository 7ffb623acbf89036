"""The audit log of champion moves: every promotion, refusal and rollback, who did it, when and why.

Rows live in the control database (:mod:`ml.core.control_db`), next to the tenants.
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import dataclass

from ml.core import control_db
from ml.core.settings import Settings, get_settings


@dataclass(frozen=True)
class AuditEntry:
    at: str
    actor: str
    kind: str
    tenant_id: str
    action: str  # promote | rollback | refuse
    from_version: str | None
    to_version: str | None
    reason: str


def actor() -> str:
    """Who is acting: the Airflow run when inside a task (Airflow's task context), else the OS user."""
    dag_run = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if dag_run:
        return f"airflow:{os.environ.get('AIRFLOW_CTX_DAG_ID', '?')}/{dag_run}"
    try:
        return getpass.getuser()
    except Exception:
        return f"uid:{os.getuid()}"


def record(
    kind: str,
    tenant_id: str,
    action: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    settings: Settings | None = None,
    who: str | None = None,
) -> AuditEntry:
    """Append one entry (``who`` defaults to :func:`actor`)."""
    settings = settings or get_settings()
    entry = AuditEntry(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        who or actor(),
        kind,
        tenant_id,
        action,
        from_version,
        to_version,
        reason,
    )
    with control_db.connect(settings) as con:
        con.execute(
            "insert into model_audit (at, actor, kind, tenant_id, action, from_version, to_version, reason)"
            " values (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.at,
                entry.actor,
                entry.kind,
                entry.tenant_id,
                entry.action,
                entry.from_version,
                entry.to_version,
                entry.reason,
            ),
        )
    return entry


def entries(
    settings: Settings | None = None, tenant_id: str | None = None, kind: str | None = None
) -> list[AuditEntry]:
    """The log, oldest first, of one tenant and/or kind (or everything)."""
    settings = settings or get_settings()
    sql = "select at, actor, kind, tenant_id, action, from_version, to_version, reason from model_audit where 1=1"
    args: list[str] = []
    if tenant_id:
        sql += " and tenant_id = ?"
        args.append(tenant_id)
    if kind:
        sql += " and kind = ?"
        args.append(kind)
    with control_db.connect(settings) as con:
        rows = con.execute(sql + " order by id", args).fetchall()
    return [AuditEntry(*r) for r in rows]
