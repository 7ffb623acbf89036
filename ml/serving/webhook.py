"""The webhook's durable path into ``landing/``: an event is acknowledged only once it cannot be lost.

Requests are grouped for a few milliseconds (``TENANTFLOW_SERVE_FLUSH_MS``); each tenant's new
events of the group are written to one JSONL file under ``landing/region=R/tenant=T/date=D/``
(a temporary name, fsync, atomic rename, fsync of the folder), their ids and body hashes recorded
in the idempotency ledger (``serving/events.sqlite``, WAL, ``synchronous=full``), and only then
are the requests answered. A replayed event id returns the original receipt; the same id with
another body is a conflict and nothing of that request is written. The ingest DAG reads the
files like any other drop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ml.core import atomic, control_db
from ml.core.contract import LANDING_COLUMNS
from ml.core.settings import Settings

log = logging.getLogger(__name__)


class EventConflict(Exception):
    """An event id was already accepted with a different body."""

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(f"event ids already accepted with a different body: {event_ids[:10]}")
        self.event_ids = event_ids


class QuotaExceeded(Exception):
    def __init__(self, used: int, quota: int, retry_after: float) -> None:
        super().__init__(f"daily event quota of {quota:,} reached ({used:,} accepted today)")
        self.used, self.quota, self.retry_after = used, quota, retry_after


@dataclass
class _Submission:
    tenant_id: str
    region: str
    quota: int
    events: list[dict]  # landing-contract rows, tenant_id set from the key
    hashes: list[str]
    future: Future


def event_hash(event: dict) -> str:
    """The identity of an event's content (what a replay must repeat exactly)."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[
        :32
    ]


class EventSink:
    """Group commit of webhook events into landing files; one writer thread owns the files and the ledger."""

    def __init__(self, settings: Settings, flush_ms: float = 5.0) -> None:
        self.settings = settings
        self.flush_s = flush_ms / 1000
        self.queue: queue.Queue[_Submission | None] = queue.Queue()
        self.db_path = settings.stores.webhook_ledger
        self.thread = threading.Thread(target=self._run, name="event-sink", daemon=True)
        self.files_written = 0
        self.thread.start()

    def submit(self, tenant_id: str, region: str, quota: int, events: list[dict]) -> Future:
        fut: Future = Future()
        self.queue.put(_Submission(tenant_id, region, quota, events, [event_hash(e) for e in events], fut))
        return fut

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _connect(self) -> sqlite3.Connection:
        con = control_db.open_sqlite(self.db_path, "webhook")
        con.execute("pragma journal_mode=wal")
        con.execute("pragma synchronous=full")
        return con

    def _run(self) -> None:
        con = self._connect()
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.flush_s
            while (left := deadline - time.monotonic()) > 0:
                try:
                    nxt = self.queue.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._commit(con, batch)
            except Exception as exc:
                log.exception("writing %d webhook requests failed", len(batch))
                for s in batch:
                    if not s.future.done():
                        s.future.set_exception(exc)
        con.close()

    def _commit(self, con: sqlite3.Connection, batch: list[_Submission]) -> None:
        """Decide every request of the group, write what is new durably, then answer them all."""
        now = datetime.now(UTC)
        tenants = {s.tenant_id for s in batch}
        known = _accepted_before(con, batch)
        used = {t: _accepted_on(con, t, now.date().isoformat()) for t in tenants}
        group = _Group(now)
        answers = [(s, group.decide(s, known, used)) for s in batch]
        regions = {s.tenant_id: s.region for s in batch}
        files = {t: self._write_landing(t, regions[t], now.date(), rows) for t, rows in group.new_rows.items()}
        if group.ledger:
            _record(con, group.ledger, files, now.date().isoformat())
        for s, answer in answers:  # acknowledged only now: files fsynced and renamed, ledger committed
            if isinstance(answer, Exception):
                s.future.set_exception(answer)
            else:
                s.future.set_result(answer)

    def _write_landing(self, tenant_id: str, region: str, day: date, rows: list[dict[str, Any]]) -> Path:
        """One durable landing file (fsync of the file, rename, fsync of the folder) with the rows."""
        folder = self.settings.stores.landing.day_dir(region, tenant_id, day)
        final = folder / f"events-api-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.jsonl"
        lines = b"".join(
            json.dumps({c: r.get(c) for c in LANDING_COLUMNS}, separators=(",", ":")).encode() + b"\n" for r in rows
        )
        atomic.write_bytes(final, lines, durable=True)
        self.files_written += 1
        return final


def _accepted_before(con: sqlite3.Connection, batch: list[_Submission]) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(tenant, event id) -> (body hash, receipt, received at) of every id of the group accepted before."""
    known: dict[tuple[str, str], tuple[str, str, str]] = {}
    for tenant_id in {s.tenant_id for s in batch}:
        ids = list({e["event_id"] for s in batch if s.tenant_id == tenant_id for e in s.events})
        for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[i : i + 900]
            rows = con.execute(
                f"select event_id, body_hash, receipt_id, received_at from api_events where tenant_id = ? "
                f"and event_id in ({','.join('?' * len(chunk))})",
                [tenant_id, *chunk],
            ).fetchall()
            for eid, h, rid, at in rows:
                known[(tenant_id, eid)] = (h, rid, at)
    return known


def _accepted_on(con: sqlite3.Connection, tenant_id: str, day: str) -> int:
    row = con.execute(
        "select accepted from api_event_days where tenant_id = ? and day = ?", [tenant_id, day]
    ).fetchone()
    return int(row[0]) if row else 0


def _record(
    con: sqlite3.Connection, ledger: list[tuple[str, str, str, str, str]], files: dict[str, Path], day: str
) -> None:
    """The accepted ids and the day's counts, in one transaction (after the files are durable)."""
    counts: dict[str, int] = defaultdict(int)
    for r in ledger:
        counts[r[0]] += 1
    con.execute("begin immediate")
    try:
        con.executemany("insert into api_events values (?, ?, ?, ?, ?, ?)", [(*r, files[r[0]].name) for r in ledger])
        con.executemany(
            "insert into api_event_days values (?, ?, ?) on conflict (tenant_id, day) "
            "do update set accepted = accepted + excluded.accepted",
            [(t, day, n) for t, n in counts.items()],
        )
    except BaseException:
        con.execute("rollback")  # the group fails; the connection is ready for the next one
        raise
    con.execute("commit")


class _Group:
    """One group commit's decisions: which events are new, replayed or in conflict, within quota."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.received_at = now.isoformat(timespec="milliseconds")
        self.new_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)  # tenant -> events to write
        self.ledger: list[tuple[str, str, str, str, str]] = []

    def decide(
        self, s: _Submission, known: dict[tuple[str, str], tuple[str, str, str]], used: dict[str, int]
    ) -> list[dict[str, Any]] | Exception:
        """The request's answer (one result per event), or why none of it is written."""
        receipt = uuid.uuid4().hex[:16]
        results, fresh, conflicts = [], [], []
        seen_here: dict[str, str] = {}
        for e, h in zip(s.events, s.hashes, strict=True):
            eid = e["event_id"]
            prior = known.get((s.tenant_id, eid))
            if prior is not None:  # accepted before: a replay gets the original answer
                if prior[0] != h:
                    conflicts.append(eid)
                else:
                    results.append(_result(eid, prior[1], prior[2], replayed=True))
            elif eid in seen_here:  # the same event twice in one request: accepted once
                if seen_here[eid] != h:
                    conflicts.append(eid)
            else:
                seen_here[eid] = h
                fresh.append((e, h))
                results.append(_result(eid, receipt, self.received_at, replayed=False))
        if conflicts:
            return EventConflict(conflicts)
        if used[s.tenant_id] + len(fresh) > s.quota:
            tomorrow = datetime.combine(self.now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            return QuotaExceeded(used[s.tenant_id], s.quota, (tomorrow - self.now).total_seconds())
        used[s.tenant_id] += len(fresh)
        for e, h in fresh:
            known[(s.tenant_id, e["event_id"])] = (h, receipt, self.received_at)
            self.new_rows[s.tenant_id].append(e)
            self.ledger.append((s.tenant_id, e["event_id"], h, receipt, self.received_at))
        return results


def _result(event_id: str, receipt: str, received_at: str, replayed: bool) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "status": "accepted",
        "receipt_id": receipt,
        "received_at": received_at,
        "replayed": replayed,
    }


def forget_tenant(path: Path, tenant_id: str) -> int:
    """Delete a tenant's rows from a webhook ledger for good; returns the event rows deleted.

    ``secure_delete`` zeroes the freed content, ``VACUUM`` rebuilds the file, and a truncating
    checkpoint empties the write-ahead log, which otherwise keeps the old pages (a running API
    holds the ledger open: the checkpoint is retried while a reader is busy). For :mod:`ml.ops.erasure`.

    Raises:
        RuntimeError: the write-ahead log stayed busy for 30 s (run the purge again).
    """
    return _forget(path, "delete from api_events where tenant_id = ?", [(tenant_id,)], tenant_id)


def forget_events(path: Path, tenant_id: str, event_ids: list[str]) -> int:
    """Delete these events of a tenant from a webhook ledger for good (an erased user's; see
    :func:`forget_tenant` for how); returns the rows deleted. The day counts stay (they hold no ids)."""
    if not event_ids:
        return 0
    sql = "delete from api_events where tenant_id = ? and event_id = ?"
    return _forget(path, sql, [(tenant_id, e) for e in event_ids], None)


def _forget(path: Path, sql: str, params: list[tuple[str, ...]], whole_tenant: str | None) -> int:
    if not path.exists():
        return 0
    con = control_db.open_sqlite(path, "webhook")
    try:
        con.execute("pragma secure_delete = on")
        n = 0
        for p in params:
            n += con.execute(sql, p).rowcount
        if whole_tenant is not None:
            con.execute("delete from api_event_days where tenant_id = ?", (whole_tenant,))
        con.execute("vacuum")
        deadline = time.monotonic() + 30
        while con.execute("pragma wal_checkpoint(truncate)").fetchone()[0]:  # 1: a reader kept it busy
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: its write-ahead log stayed busy; run the erasure again")
            time.sleep(0.2)
    finally:
        con.close()
    return int(n)
