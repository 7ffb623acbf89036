"""The audit log: append-only and hash-chained, in the control database.

Every entry holds the SHA-256 of the one before (``prev_hash``) and its own (``hash``, over its
id, time, actor, tenant, action, subject, detail and ``prev_hash``, as canonical JSON), the
construction of a hash chain as in RFC 6962's log (without the Merkle tree): editing an entry
breaks its hash, deleting one breaks the next entry's link. SQLite triggers refuse ``UPDATE`` and
``DELETE`` on the table (migration 0007), and after each commit the last entry's id and hash are
written to ``<home>/audit.head``, so cutting entries off the end is found too. Someone who can
write both files can still rebuild the chain: ``tenantflow audit export`` to storage they cannot
write is the anchor.

Actions: model moves (``promote``, ``rollback``, ``refuse``, ``move_failed``, ``outside_move``,
subject the model kind), ``tenant_add``, ``tenant_change``, ``quota_change``, ``tenant_remove``,
``key_create``, ``key_revoke``, ``traffic_split`` and ``erase_user`` / ``erase_tenant``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.core import control_db
from ml.core.settings import Settings, get_settings

GENESIS = "0" * 64
_COLUMNS = "id, at, actor, tenant_id, action, subject, detail, prev_hash, hash"


@dataclass(frozen=True)
class Entry:
    """One audit entry; ``detail`` is the action's own fields (versions, reason, changed fields …)."""

    id: int
    at: str  # UTC, ISO 8601 to the second
    actor: str
    tenant_id: str
    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def entry_hash(
    id: int, at: str, actor: str, tenant_id: str, action: str, subject: str, detail: str, prev_hash: str
) -> str:
    """SHA-256 (hex) of an entry's fields as canonical JSON; ``detail`` is its stored JSON text."""
    body = json.dumps([id, at, actor, tenant_id, action, subject, detail, prev_hash], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def canonical(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), default=str)


def actor() -> str:
    """Who is acting: the Airflow run when inside a task (Airflow's task context), else the OS user."""
    dag_run = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if dag_run:
        return f"airflow:{os.environ.get('AIRFLOW_CTX_DAG_ID', '?')}/{dag_run}"
    try:
        return getpass.getuser()
    except Exception:
        return f"uid:{os.getuid()}"


def append(
    con: sqlite3.Connection,
    action: str,
    tenant_id: str,
    subject: str = "",
    detail: dict[str, Any] | None = None,
    who: str | None = None,
) -> Entry:
    """Append one entry inside the caller's control-database transaction (the change and its
    entry commit together); :func:`ml.core.control_db.connect` writes the head after the commit."""
    last = con.execute("select id, hash from audit_log order by id desc limit 1").fetchone()
    number, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = canonical(detail)
    who = who or actor()
    digest = entry_hash(number, at, who, tenant_id, action, subject, text, prev)
    con.execute(
        f"insert into audit_log ({_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (number, at, who, tenant_id, action, subject, text, prev, digest),
    )
    if isinstance(con, control_db.ControlConnection):
        con.audit_head = {"id": number, "hash": digest}
    return Entry(number, at, who, tenant_id, action, subject, json.loads(text), prev, digest)


def record(
    action: str,
    tenant_id: str,
    subject: str = "",
    detail: dict[str, Any] | None = None,
    settings: Settings | None = None,
    who: str | None = None,
) -> Entry:
    """Append one entry in a transaction of its own."""
    with control_db.connect(settings or get_settings()) as con:
        return append(con, action, tenant_id, subject, detail, who)


def entries(
    settings: Settings | None = None,
    tenant_id: str | None = None,
    subject: str | None = None,
    actions: tuple[str, ...] | None = None,
    since: str | None = None,
) -> list[Entry]:
    """The log, oldest first, filtered by tenant, subject, actions and time (``since``: ISO date or time)."""
    sql, args = f"select {_COLUMNS} from audit_log where 1=1", []
    for column, value in (("tenant_id", tenant_id), ("subject", subject)):
        if value:
            sql += f" and {column} = ?"
            args.append(value)
    if actions:
        sql += f" and action in ({','.join('?' * len(actions))})"
        args.extend(actions)
    if since:
        sql += " and at >= ?"
        args.append(since)
    with control_db.connect(settings or get_settings()) as con:
        return [_entry(r) for r in con.execute(sql + " order by id", args).fetchall()]


def _entry(row: tuple) -> Entry:
    number, at, who, tenant_id, action, subject, detail, prev_hash, digest = row
    return Entry(number, at, who, tenant_id, action, subject, json.loads(detail), prev_hash, digest)


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``ok`` when the chain is whole and reaches the head."""

    entries: int
    problems: list[str]
    head: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(settings: Settings | None = None) -> Verification:
    """Recompute the chain: every entry's hash, every link, ids without gaps, and the head reached."""
    settings = settings or get_settings()
    problems: list[str] = []
    prev, expected_id, count = GENESIS, 1, 0
    with control_db.connect(settings) as con:
        by_id: dict[int, str] = {}
        for row in con.execute(f"select {_COLUMNS} from audit_log order by id"):
            count += 1
            number, at, who, tenant, action, subject, detail, prev_hash, digest = row
            if number != expected_id:
                problems.append(f"entries {expected_id}..{number - 1} are missing (deleted)")
            if prev_hash != prev:
                problems.append(f"entry {number}: its link does not name entry {number - 1}'s hash (edited or deleted)")
            if entry_hash(number, at, who, tenant, action, subject, detail, prev_hash) != digest:
                problems.append(
                    f"entry {number} ({action}, tenant {tenant}, {at}): its content does not match its hash"
                )
            prev, expected_id, by_id[number] = digest, number + 1, digest
    head = _read_head(settings)
    if head is not None and by_id.get(int(head["id"])) != head["hash"]:
        problems.append(
            f"the head ({settings.stores.audit_head}) records entry {head['id']} with hash {head['hash'][:12]}…, "
            f"which the log {'does not have' if int(head['id']) not in by_id else 'holds with another hash'} "
            "(entries cut off the end, or the log replaced)"
        )
    return Verification(count, problems, head)


def _read_head(settings: Settings) -> dict[str, Any] | None:
    try:
        return json.loads(settings.stores.audit_head.read_text())
    except FileNotFoundError:
        return None
