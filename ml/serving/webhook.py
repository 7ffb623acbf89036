"""The webhook's durable path into ``landing/``: an event is acknowledged only once it cannot be lost.

Requests are grouped for a few milliseconds (``TENANTFLOW_SERVE_FLUSH_MS``); each tenant's new
events of the group are written to one JSONL file under ``landing/region=R/tenant=T/date=D/``
(a temporary name, fsync, atomic rename, fsync of the folder), their ids and body hashes recorded
in the idempotency ledger (``serving/events.sqlite``, WAL, ``synchronous=full``), and only then
are the requests answered. A replayed event id returns the original receipt; the same id with
another body is a conflict and nothing of that request is written. The ingest DAG reads the
files like any other drop.

A silo tenant's files are written sealed with its key (:mod:`ml.core.sealed_files`), and its
event ids are kept in the ledger only as keyed hashes (:mod:`ml.core.webhook_ledger`).
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

from ml.core import atomic, control_db, sealed_files
from ml.core.contract import LANDING_COLUMNS, webhook_file_name
from ml.core.settings import Settings
from ml.core.tenant_parquet import writer_tenant_key
from ml.core.webhook_ledger import ledger_id, ledger_key

log = logging.getLogger(__name__)


class EventConflict(Exception):
    """An event id was already accepted with a different body."""

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(f"event ids already accepted with a different body: {event_ids[:10]}")
        self.event_ids = event_ids


class TenantKeyUnavailable(Exception):
    """A silo tenant's key cannot be had for its webhook files; nothing of the request was written
    (the cause, logged and chained, may name server paths: it is not for the tenant)."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id}: its key for sealing webhook files cannot be had")


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
    silo: bool = False
    ledger_ids: list[str] | None = None  # the events' ids as the ledger keeps them (set by the writer)


@dataclass(frozen=True)
class _Keys:
    """A silo tenant's keys for its webhook files and ledger rows."""

    sealing: bytes
    ledger: bytes


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
        self._keys: dict[str, _Keys] = {}  # silo tenants' keys, fetched once by the writer thread
        self.thread.start()

    def submit(self, tenant_id: str, region: str, quota: int, events: list[dict], silo: bool = False) -> Future:
        """Queue a request's events; the future answers one result per event, or raises
        :class:`EventConflict`, :class:`QuotaExceeded`, or (``silo``: the tenant's files are sealed)
        :class:`TenantKeyUnavailable`."""
        fut: Future = Future()
        hashes = [event_hash(e) for e in events]
        self.queue.put(_Submission(tenant_id, region, quota, events, hashes, fut, silo))
        return fut

    def _tenant_keys(self, tenant_id: str) -> _Keys:
        if tenant_id not in self._keys:
            key = writer_tenant_key(self.settings, tenant_id)
            if key is None:
                raise ValueError(f"tenant {tenant_id} is not a silo tenant (its isolation changed: restart the API)")
            self._keys[tenant_id] = _Keys(sealed_files.sealing_key(key), ledger_key(key))
        return self._keys[tenant_id]

    def _with_ledger_ids(self, batch: list[_Submission]) -> list[_Submission]:
        """The group's requests with their ledger ids set; a silo tenant's whose key cannot be had fail alone."""
        ready = []
        for s in batch:
            try:
                key = self._tenant_keys(s.tenant_id).ledger if s.silo else None
            except Exception as exc:  # a missing, wrong or malformed key; the provider down
                log.exception("tenant %s: no key for its webhook files", s.tenant_id)
                unavailable = TenantKeyUnavailable(s.tenant_id)
                unavailable.__cause__ = exc
                s.future.set_exception(unavailable)
                continue
            s.ledger_ids = [ledger_id(key, e["event_id"]) for e in s.events]
            ready.append(s)
        return ready

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
        batch = self._with_ledger_ids(batch)
        tenants = {s.tenant_id for s in batch}
        known = _accepted_before(con, batch)
        used = {t: _accepted_on(con, t, now.date().isoformat()) for t in tenants}
        group = _Group(now)
        answers = [(s, group.decide(s, known, used)) for s in batch]
        regions = {s.tenant_id: s.region for s in batch}
        sealed = {s.tenant_id for s in batch if s.silo}
        files = {
            t: self._write_landing(t, regions[t], now.date(), rows, t in sealed) for t, rows in group.new_rows.items()
        }
        if group.ledger:
            _record(con, group.ledger, files, now.date().isoformat())
        for s, answer in answers:  # acknowledged only now: files fsynced and renamed, ledger committed
            if isinstance(answer, Exception):
                s.future.set_exception(answer)
            else:
                s.future.set_result(answer)

    def _write_landing(self, tenant_id: str, region: str, day: date, rows: list[dict[str, Any]], seal: bool) -> Path:
        """One durable landing file (fsync of the file, rename, fsync of the folder) with the rows;
        sealed with the tenant's key when ``seal``."""
        folder = self.settings.stores.landing.day_dir(region, tenant_id, day)
        final = folder / webhook_file_name(time.strftime("%H%M%S", time.gmtime()), uuid.uuid4().hex[:12])
        lines = b"".join(
            json.dumps({c: r.get(c) for c in LANDING_COLUMNS}, separators=(",", ":")).encode() + b"\n" for r in rows
        )
        if seal:
            lines = sealed_files.seal_bytes(lines, self._tenant_keys(tenant_id).sealing)
        atomic.write_bytes(final, lines, durable=True)
        self.files_written += 1
        return final


def _accepted_before(con: sqlite3.Connection, batch: list[_Submission]) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(tenant, event id) -> (body hash, receipt, received at) of every id of the group accepted before."""
    known: dict[tuple[str, str], tuple[str, str, str]] = {}
    for tenant_id in {s.tenant_id for s in batch}:
        ids = list({i for s in batch if s.tenant_id == tenant_id for i in s.ledger_ids or []})
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
        for e, h, lid in zip(s.events, s.hashes, s.ledger_ids or [], strict=True):
            eid = e["event_id"]
            prior = known.get((s.tenant_id, lid))
            if prior is not None:  # accepted before: a replay gets the original answer
                if prior[0] != h:
                    conflicts.append(eid)
                else:
                    results.append(_result(eid, prior[1], prior[2], replayed=True))
            elif lid in seen_here:  # the same event twice in one request: accepted once
                if seen_here[lid] != h:
                    conflicts.append(eid)
            else:
                seen_here[lid] = h
                fresh.append((e, h, lid))
                results.append(_result(eid, receipt, self.received_at, replayed=False))
        if conflicts:
            return EventConflict(conflicts)
        if used[s.tenant_id] + len(fresh) > s.quota:
            tomorrow = datetime.combine(self.now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            return QuotaExceeded(used[s.tenant_id], s.quota, (tomorrow - self.now).total_seconds())
        used[s.tenant_id] += len(fresh)
        for e, h, lid in fresh:
            known[(s.tenant_id, lid)] = (h, receipt, self.received_at)
            self.new_rows[s.tenant_id].append(e)
            self.ledger.append((s.tenant_id, lid, h, receipt, self.received_at))
        return results


def _result(event_id: str, receipt: str, received_at: str, replayed: bool) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "status": "accepted",
        "receipt_id": receipt,
        "received_at": received_at,
        "replayed": replayed,
    }
