"""The webhook's idempotency ledger (``serving/events.sqlite``) as erasure and sealing change it.

:mod:`ml.serving.webhook` writes it: one row per accepted event (tenant, event id, body hash,
receipt, time, landing file) and a count per tenant and day. A silo tenant's event ids are kept
only as keyed hashes (:func:`ledger_id`: ``h1:`` + HMAC-SHA256, RFC 2104, under a key derived from
the tenant's by HKDF-SHA256), which is all a replay check needs: no id the tenant sent is in the
ledger's bytes. Ids recorded as sent before (the tenant's ids were hashed from then on) are hashed
by the tenant's next features build (:func:`seal`, from :func:`ml.data.ingest.run.seal_lake`);
until then a replay of such an event is accepted again (ingestion drops the duplicate by its id),
and erasure finds either form.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from ml.core import control_db
from ml.core.tenant_keys import derive

_INFO = b"tenantflow webhook ledger v1"
_HASHED = "h1:" + "[0-9a-f]" * 64  # a ledger id, as a SQLite glob


def ledger_key(tenant_key: str) -> bytes:
    """The key a silo tenant's ledger ids are hashed under, derived from its key (64 hex characters)."""
    return derive(tenant_key, _INFO)


def ledger_id(key: bytes | None, event_id: str) -> str:
    """An event id as the ledger keeps it: as sent (a pool tenant, ``key`` None), or a silo tenant's
    ``h1:`` + HMAC-SHA256 of the id under its :func:`ledger_key`."""
    if key is None:
        return event_id
    return "h1:" + hmac.new(key, event_id.encode(), hashlib.sha256).hexdigest()


def seal(path: Path, tenant_id: str, key: bytes) -> int:
    """Replace a silo tenant's event ids kept as sent by their :func:`ledger_id`, for good (the old
    text zeroed, as :func:`forget_tenant` does); returns the rows changed. An id whose hashed form
    was recorded meanwhile (the event replayed after the tenant's ids were hashed, and accepted
    again) keeps that row; the plain one is deleted."""
    if not path.exists():
        return 0
    con = control_db.open_sqlite(path, "webhook")
    try:
        sql = "select event_id from api_events where tenant_id = ? and not (event_id glob ?)"
        sent = [r[0] for r in con.execute(sql, [tenant_id, _HASHED]).fetchall()]
    finally:
        con.close()
    if not sent:
        return 0
    update = "update or ignore api_events set event_id = ? where tenant_id = ? and event_id = ?"
    left = "delete from api_events where tenant_id = ? and event_id = ?"
    return _rewrite(
        path, [(update, [(ledger_id(key, e), tenant_id, e) for e in sent]), (left, [(tenant_id, e) for e in sent])]
    )


def forget_tenant(path: Path, tenant_id: str) -> int:
    """Delete a tenant's rows from a webhook ledger for good; returns the event rows deleted.

    ``secure_delete`` zeroes the freed content, ``VACUUM`` rebuilds the file, and a truncating
    checkpoint empties the write-ahead log, which otherwise keeps the old pages (a running API
    holds the ledger open: the checkpoint is retried while a reader is busy). For :mod:`ml.ops.erasure`.

    Raises:
        RuntimeError: the write-ahead log stayed busy for 30 s (run the purge again).
    """
    return _rewrite(
        path,
        [
            ("delete from api_events where tenant_id = ?", [(tenant_id,)]),
            ("delete from api_event_days where tenant_id = ?", [(tenant_id,)]),
        ],
    )


def forget_events(path: Path, tenant_id: str, event_ids: list[str], key: bytes | None = None) -> int:
    """Delete these events of a tenant from a webhook ledger for good (an erased user's; see
    :func:`forget_tenant` for how); ``key``: a silo tenant's :func:`ledger_key` (its ids are kept
    hashed; ones recorded before that as sent). Returns the rows deleted. The day counts stay (they
    hold no ids)."""
    if not event_ids:
        return 0
    ids = [*event_ids, *(ledger_id(key, e) for e in event_ids)] if key is not None else event_ids
    sql = "delete from api_events where tenant_id = ? and event_id = ?"
    return _rewrite(path, [(sql, [(tenant_id, e) for e in ids])])


def _rewrite(path: Path, statements: list[tuple[str, list[tuple[str, ...]]]]) -> int:
    """Run ``statements`` (SQL, each row of parameters) and leave none of the old text in the file;
    returns the rows the first statement changed."""
    if not path.exists():
        return 0
    con = control_db.open_sqlite(path, "webhook")
    try:
        con.execute("pragma secure_delete = on")
        counts = [sum(con.execute(sql, p).rowcount for p in params) for sql, params in statements]
        n = counts[0]
        con.execute("vacuum")
        deadline = time.monotonic() + 30
        while con.execute("pragma wal_checkpoint(truncate)").fetchone()[0]:  # 1: a reader kept it busy
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: its write-ahead log stayed busy; run the erasure again")
            time.sleep(0.2)
    finally:
        con.close()
    return int(n)
