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


class PredictionLog:
    """Every answer, buffered in memory and flushed every ``interval`` seconds as one file per tenant."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.settings = settings
        self.store = settings.stores.prediction_log
        self.interval = interval
        self.buffer: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.keys: dict[str, bytes | None] = {}  # tenant -> its sealing key (silo) or None, fetched once
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
        """Write the buffered records; returns how many. A tenant whose key cannot be had keeps its
        records buffered for the next flush (logged), the others are written."""
        with self.lock:
            rows, self.buffer = self.buffer, []
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[(r["region"], r["tenant_id"], r["at"][:10])].append(r)
        kept: list[dict[str, Any]] = []
        for (region, tenant_id, day), recs in groups.items():
            try:
                key = self._key(tenant_id)
            except Exception:
                log.exception("tenant %s: no key for its prediction log; %d records kept for the next flush",
                              tenant_id, len(recs))  # fmt: skip
                kept += recs
                continue
            folder = self.store.day_dir(region, tenant_id, date.fromisoformat(day))
            name = f"part-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}.jsonl"
            atomic.write_bytes(folder / name, prediction_log.encode(recs, key))
        if kept:
            with self.lock:
                self.buffer[:0] = kept
        return len(rows) - len(kept)

    def _key(self, tenant_id: str) -> bytes | None:
        if tenant_id not in self.keys:
            self.keys[tenant_id] = sealed_files.writer_key(self.settings, tenant_id)
        return self.keys[tenant_id]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.flush()
