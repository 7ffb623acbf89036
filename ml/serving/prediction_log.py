"""The prediction log: every answer the API gave, for the monitor's live metrics.

Records (tenant, user, items or users, model version, arm, latency, features snapshot) are
buffered in memory and flushed every ``TENANTFLOW_SERVE_LOG_INTERVAL`` seconds as one file per
tenant under ``prediction_log/region=R/tenant=T/date=D/`` (written atomically): JSON lines, a
silo tenant's sealed with its key (:mod:`ml.core.prediction_log`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from ml.core import atomic, prediction_log, sealed_files
from ml.core.settings import Settings

log = logging.getLogger(__name__)

KEY_RETRY_SECONDS = 60.0  # a tenant whose key could not be had is asked for it again after this long
MAX_KEPT = 100_000  # records kept in memory for tenants without a key; beyond, the oldest are dropped


class PredictionLog:
    """Every answer, buffered in memory and flushed every ``interval`` seconds as one file per tenant."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.settings = settings
        self.store = settings.stores.prediction_log
        self.interval = interval
        self.buffer: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.keys: dict[str, bytes | None] = {}  # tenant -> its sealing key (silo) or None, fetched once
        self.failed: dict[str, float] = {}  # tenant -> when its key last could not be had (monotonic)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    def append(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.buffer.append(record)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write the buffered records; returns how many. A silo tenant whose key cannot be had keeps
        its records buffered (logged; asked again after ``KEY_RETRY_SECONDS``; at most ``MAX_KEPT``
        records in all, the oldest dropped and counted in the log), the others are written."""
        with self.lock:
            rows, self.buffer = self.buffer, []
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[(r["region"], r["tenant_id"], r["at"][:10])].append(r)
        kept: list[dict[str, Any]] = []
        written = 0
        for (region, tenant_id, day), recs in groups.items():
            try:
                key = self._key(tenant_id)
            except Exception:
                if tenant_id not in self.failed:  # logged once per try, not every flush
                    log.exception("tenant %s: no key for its prediction log; its records are kept", tenant_id)
                self.failed[tenant_id] = self.failed.get(tenant_id, time.monotonic())
                kept += recs
                continue
            folder = self.store.day_dir(region, tenant_id, date.fromisoformat(day))
            name = f"part-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}.jsonl"
            atomic.write_bytes(folder / name, prediction_log.encode(recs, key))
            written += len(recs)
        if len(kept) > MAX_KEPT:
            log.error("prediction log: %d records of tenants without a key dropped", len(kept) - MAX_KEPT)
            kept = kept[-MAX_KEPT:]
        if kept:
            with self.lock:
                self.buffer[:0] = kept
        return written

    def _key(self, tenant_id: str) -> bytes | None:
        """The tenant's sealing key (None: a pool tenant's plain log); raises while its key cannot be
        had, without asking the provider again until ``KEY_RETRY_SECONDS`` have passed."""
        if tenant_id not in self.keys:
            failed = self.failed.get(tenant_id)
            if failed is not None and time.monotonic() - failed < KEY_RETRY_SECONDS:
                raise RuntimeError(f"tenant {tenant_id}: its key could not be had {time.monotonic() - failed:.0f}s ago")
            self.failed.pop(tenant_id, None)
            self.keys[tenant_id] = sealed_files.writer_key(self.settings, tenant_id)
        return self.keys[tenant_id]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.flush()
