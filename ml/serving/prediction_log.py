"""The prediction log: every answer the API gave, for the monitor's live metrics.

Records (tenant, user, items or users, model version, arm, latency, features snapshot) are
buffered in memory and flushed every ``TENANTFLOW_SERVE_LOG_INTERVAL`` seconds as JSONL files
under ``prediction_log/region=R/tenant=T/date=D/`` (written atomically).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from ml.core import atomic
from ml.core.settings import Settings


class PredictionLog:
    """Every answer, buffered in memory and flushed every ``interval`` seconds as JSONL files."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.store = settings.stores.prediction_log
        self.interval = interval
        self.buffer: list[dict[str, Any]] = []
        self.lock = threading.Lock()
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
        with self.lock:
            rows, self.buffer = self.buffer, []
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[(r["region"], r["tenant_id"], r["at"][:10])].append(r)
        for (region, tenant_id, day), recs in groups.items():
            folder = self.store.day_dir(region, tenant_id, date.fromisoformat(day))
            name = f"part-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}.jsonl"
            atomic.write_text(
                folder / name, "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in recs)
            )
        return len(rows)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.flush()
