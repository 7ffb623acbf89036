"""What the serving API holds in memory and writes, apart from HTTP.

* :class:`OnlineFeatures`: one tenant's published serving marts (``ml.publish``) as arrays:
  each known user's candidates with their features, the cold-start list, churn inputs.
* :class:`ModelStore`: each tenant's champion (and challenger, where traffic is split) loaded
  from the MLflow registry by alias, refreshed in the background; a model that fails to load
  never replaces a working one, and MLflow being down leaves what is loaded in place. Loaded
  models are also kept on disk, so a restart while MLflow is down still serves them.
* :class:`AliasWatcher`: a child process that polls the registry's aliases and hands the
  server only what changed (the poll's Python work stays off the request handlers' GIL).
* :class:`EventSink`: the webhook's durable path into ``landing/``: requests are grouped for a
  few milliseconds, each tenant's new events written to one JSONL file (``*.tmp``, fsync,
  atomic rename, fsync of the folder), their ids recorded for idempotency, then acknowledged.
* :class:`PredictionLog`: every answer (tenant, user, items, model version, arm, latency),
  flushed every second as JSONL under ``prediction_log/`` for the monitoring loop.
* :class:`TokenBuckets` and :class:`AuthThrottle`: per-tenant rate limits, per-client throttling
  of bad keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ml import quality
from ml.settings import Settings
from ml.tenants import MODEL_KINDS, validate_slug

log = logging.getLogger(__name__)



# ---------------------------------------------------------------- online features


@dataclass
class OnlineFeatures:
    """One tenant's published serving marts, laid out for per-request lookups."""

    snapshot_id: str
    serving_cutoff: str | None
    columns: dict[str, int]  # numeric candidate column -> index in ``matrix``
    users: np.ndarray  # sorted user ids (unicode array) with candidates
    offsets: np.ndarray  # candidates of users[i] are rows offsets[i]:offsets[i+1]
    items: np.ndarray  # item id per candidate row
    matrix: np.ndarray  # float32, candidate rows x numeric columns
    cold_start: list[str]  # popular, then trending items not already listed
    churn_columns: dict[str, int]
    churn_users: dict[str, int]
    churn_matrix: np.ndarray

    @classmethod
    def load(cls, folder: Path, snapshot_id: str, serving_cutoff: str | None) -> OnlineFeatures:
        import pyarrow.parquet as pq

        cand = pq.read_table(folder / "ranking_candidates.parquet")
        numeric = [f.name for f in cand.schema if _is_number(f.type)]
        # fixed-width unicode arrays, not object arrays: half a million item ids would otherwise be
        # Python objects that every full garbage collection walks (100+ ms pauses under load)
        users_col = cand.column("user_id").to_numpy(zero_copy_only=False).astype(str)
        # rows are ordered by user_id: one boundary per change of user
        change = np.flatnonzero(users_col[1:] != users_col[:-1]) + 1 if len(users_col) else np.array([], dtype=int)
        starts = np.concatenate([[0], change]).astype(np.int64) if len(users_col) else np.array([], dtype=np.int64)
        matrix = np.column_stack([cand.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in numeric]) \
            if numeric and len(users_col) else np.zeros((len(users_col), len(numeric)), dtype=np.float32)  # fmt: skip
        cold = pq.read_table(folder / "cold_start_items.parquet").to_pylist()
        ordered = sorted(cold, key=lambda r: (r["list_kind"] != "popular", r["list_rank"]))
        cold_start = list(dict.fromkeys(r["item_id"] for r in ordered))
        uf = pq.read_table(folder / "user_features.parquet")
        churn_numeric = [f.name for f in uf.schema if _is_number(f.type)]
        churn_users = {u: i for i, u in enumerate(uf.column("user_id").to_pylist())}
        churn_matrix = np.column_stack([uf.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in churn_numeric]) \
            if churn_numeric and uf.num_rows else np.zeros((uf.num_rows, len(churn_numeric)), dtype=np.float32)  # fmt: skip
        return cls(
            snapshot_id=snapshot_id,
            serving_cutoff=serving_cutoff,
            columns={c: i for i, c in enumerate(numeric)},
            users=users_col[starts] if len(users_col) else np.array([], dtype=str),
            offsets=np.concatenate([starts, [len(users_col)]]).astype(np.int64),
            items=cand.column("item_id").to_numpy(zero_copy_only=False).astype(str),
            matrix=matrix,
            cold_start=cold_start,
            churn_columns={c: i for i, c in enumerate(churn_numeric)},
            churn_users=churn_users,
            churn_matrix=churn_matrix,
        )

    def candidates(self, user_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(item ids, feature rows) of a known user's candidates, or None for an unknown user."""
        i = int(np.searchsorted(self.users, user_id))
        if i >= len(self.users) or self.users[i] != user_id:
            return None
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.items[lo:hi], self.matrix[lo:hi]


def _is_number(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


# ---------------------------------------------------------------- models


@dataclass
class LoadedModel:
    """One registered version, ready to score."""

    name: str
    version: str
    trained_on: str
    features: list[str]
    booster: Any
    loaded_at: float = field(default_factory=time.time)
    _index: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    def columns_in(self, columns: dict[str, int]) -> np.ndarray:
        """Indices of this model's features among a snapshot's columns (cached per column layout)."""
        key = (",".join(columns), id(columns))
        idx = self._index.get(key)
        if idx is None:
            missing = [f for f in self.features if f not in columns]
            if missing:
                raise KeyError(f"{self.name} v{self.version} needs features {missing} that the published snapshot lacks")
            idx = np.array([columns[f] for f in self.features], dtype=np.int64)
            self._index = {key: idx}  # one layout at a time: snapshots replace each other
        return idx

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, num_threads=1)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per-row feature contributions (LightGBM's own SHAP values); last column is the bias."""
        return self.booster.predict(rows, num_threads=1, pred_contrib=True)


class MlflowUnavailable(RuntimeError):
    """The registry could not be asked (down, timing out): keep what is loaded."""


class ModelStore:
    """Champion and challenger per (tenant, kind), swapped in when an alias moves."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = settings.home / "serving" / "models"
        self.models: dict[tuple[str, str, str], LoadedModel] = {}
        self.last_error: dict[tuple[str, str, str], str] = {}
        self.mlflow_ok: bool | None = None

    def get(self, tenant_id: str, kind: str, arm: str) -> LoadedModel | None:
        return self.models.get((tenant_id, kind, arm))

    def apply(self, wanted: Iterable[tuple[str, str, str]], aliases: dict[str, dict[str, str]] | MlflowUnavailable) -> dict[str, int]:
        """Load what moved, given the registry's aliases (or why MLflow could not be asked).

        Returns counts: swapped, unchanged, failed, unavailable, removed.
        """
        counts = {"swapped": 0, "unchanged": 0, "failed": 0, "unavailable": 0, "removed": 0}
        from ml import registry

        keys = list(wanted)
        if isinstance(aliases, MlflowUnavailable):
            self.mlflow_ok = False
            for tenant_id, kind, arm in keys:
                key = (tenant_id, kind, arm)
                counts["unavailable"] += 1
                self.last_error[key] = str(aliases)
                if key not in self.models:  # e.g. a restart while MLflow is down: the disk copy
                    cached = self._from_disk(registry.model_name(kind, tenant_id), arm)
                    if cached is not None:
                        self.models[key] = cached
            return counts
        self.mlflow_ok = True
        for tenant_id, kind, arm in keys:
            key = (tenant_id, kind, arm)
            name = registry.model_name(kind, tenant_id)
            version = aliases.get(name, {}).get(arm)
            current = self.models.get(key)
            if version is None:
                if current is not None:
                    del self.models[key]  # the alias was removed on purpose (e.g. no challenger any more)
                    counts["removed"] += 1
                continue
            if current is not None and current.version == version:
                counts["unchanged"] += 1
                continue
            try:
                model = self._load(name, version)
            except Exception as exc:  # noqa: BLE001 — a broken version never replaces a working one
                log.exception("could not load %s v%s; still serving %s", name, version,
                              f"v{current.version}" if current else "nothing")  # fmt: skip
                self.last_error[key] = f"v{version}: {type(exc).__name__}: {exc}"
                counts["failed"] += 1
                continue
            self.models[key] = model  # one reference assignment: requests in flight keep the old object
            self._remember(name, arm, version)
            self.last_error.pop(key, None)
            counts["swapped"] += 1
            log.info("serving %s v%s as %s (was %s)", name, version, arm, f"v{current.version}" if current else "none")
        return counts

    def _load(self, name: str, version: str) -> LoadedModel:
        import lightgbm as lgb

        folder = self.cache_dir / name / version
        meta_path = folder / "meta.json"
        if meta_path.exists():  # versions are immutable: the disk copy is the same model
            meta = json.loads(meta_path.read_text())
            booster = lgb.Booster(model_file=str(folder / "model.txt"))
            return LoadedModel(name, version, meta["trained_on"], meta["features"], booster)
        import mlflow.lightgbm

        from ml import registry

        c = registry.client(self.settings)
        mv = c.get_model_version(name, version)
        booster = mlflow.lightgbm.load_model(f"models:/{name}/{version}")
        features = json.loads(mv.tags["features"])
        if booster.num_feature() != len(features):
            raise ValueError(f"{name} v{version}: the model takes {booster.num_feature()} features, its tag lists {len(features)}")
        model = LoadedModel(name, version, mv.tags.get("trained_on", ""), features, booster)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".model.{uuid.uuid4().hex}"
        booster.save_model(str(tmp))
        os.replace(tmp, folder / "model.txt")
        _write_json(meta_path, {"name": name, "version": version, "trained_on": model.trained_on, "features": features})
        return model

    def _remember(self, name: str, arm: str, version: str) -> None:
        _write_json(self.cache_dir / name / f"{arm}.json", {"version": version, "at": time.time()})

    def _from_disk(self, name: str, arm: str) -> LoadedModel | None:
        try:
            version = json.loads((self.cache_dir / name / f"{arm}.json").read_text())["version"]
            return self._load(name, version)
        except (FileNotFoundError, KeyError, ValueError):
            return None
        except Exception:  # noqa: BLE001 — only the disk copy was tried; nothing to serve
            log.exception("could not load the disk copy of %s (%s)", name, arm)
            return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def registry_aliases(settings: Settings) -> dict[str, dict[str, str]]:
    """Every registered model's aliases (name -> alias -> version), in one paged listing."""
    from ml import registry

    out: dict[str, dict[str, str]] = {}
    try:
        c = registry.client(settings)
        token = None
        while True:
            page = c.search_registered_models(max_results=1000, page_token=token)
            for m in page:
                out[m.name] = {a: str(v) for a, v in (m.aliases or {}).items()}
            token = page.token
            if not token:
                return out
    except Exception as exc:  # noqa: BLE001 — connection refused, timeouts, a locked store
        raise MlflowUnavailable(f"{type(exc).__name__}: {exc}") from None


class AliasWatcher:
    """Polls the registry's aliases in a child process and hands over only what changed.

    Listing the registry is 10-15 ms of Python per poll on a SQLite store (SQLAlchemy builds
    every entity), more as tenants grow. In the serving process that work holds the GIL
    against the request handlers: each time a handler gives the GIL up for a socket call it
    waits up to the 5 ms switch interval to get it back, which put p99 at 20-40 ms at
    300 requests/s. In a child process the poll costs the handlers nothing; the server reads
    a small dict from a pipe when the aliases moved, and still loads the moved models itself.
    """

    def __init__(self, settings: Settings, every: float) -> None:
        import multiprocessing

        self.settings, self.every = settings, every
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._conn: Any = None  # multiprocessing.connection.Connection
        self._proc: Any = None  # multiprocessing.context.SpawnProcess

    def start(self) -> None:
        self._conn, child = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(target=_watch_aliases, args=(self.settings, self.every, child, os.getpid()),
                                       name="tenantflow-alias-watcher", daemon=True)  # fmt: skip
        self._proc.start()
        child.close()

    def latest(self, wait: float = 0.0) -> dict[str, dict[str, str]] | MlflowUnavailable | None:
        """The newest state sent since the last call (waiting up to ``wait`` s for one), or None."""
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                log.warning("the alias watcher exited (code %s); starting a new one", self._proc.exitcode)
            self.start()
            wait = max(wait, 30.0)  # a fresh child imports MLflow before its first answer
        assert self._conn is not None
        newest = None
        try:
            while self._conn.poll(wait):
                kind, payload = self._conn.recv()
                newest = payload if kind == "aliases" else MlflowUnavailable(payload)
                wait = 0.0
        except (EOFError, OSError):  # the child died mid-send: the next call starts a new one
            self._proc = None
        return newest

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()


def _watch_aliases(settings: Settings, every: float, conn, parent: int) -> None:
    """The watcher's loop: send the aliases (or the error) whenever they differ from the last sent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    last: tuple | None = None
    while os.getppid() == parent:  # the server was killed: nobody to tell
        try:
            state: tuple = ("aliases", registry_aliases(settings))
        except MlflowUnavailable as exc:
            state = ("unavailable", str(exc))
        if state != last:
            try:
                conn.send(state)
            except (BrokenPipeError, OSError):
                return
            last = state
        time.sleep(every)


# ---------------------------------------------------------------- A/B split


def in_challenger_arm(tenant_id: str, user_id: str, percent: float) -> bool:
    """Stable per user: the same user always lands in the same arm for a given split."""
    if percent <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(f"{tenant_id}\x00{user_id}".encode(), digest_size=8).digest(), "big")
    return (h % 10_000) < percent * 100


# ---------------------------------------------------------------- rate limits


class TokenBuckets:
    """Requests per minute per tenant, as token buckets with a few seconds of burst."""

    def __init__(self, burst_seconds: float = 2.0) -> None:
        self.burst_seconds = burst_seconds
        self.state: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)
        self.lock = threading.Lock()

    def take(self, tenant_id: str, per_minute: int, cost: float = 1.0) -> float:
        """0 when allowed, else the seconds to wait before retrying."""
        rate = per_minute / 60.0
        capacity = max(1.0, rate * self.burst_seconds)
        now = time.monotonic()
        with self.lock:
            tokens, at = self.state.get(tenant_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= cost:
                self.state[tenant_id] = (tokens - cost, now)
                return 0.0
            self.state[tenant_id] = (tokens, now)
            return (cost - tokens) / rate if rate > 0 else 60.0


class AuthThrottle:
    """Too many bad keys from one client within a minute: that client waits."""

    def __init__(self, max_failures: int = 20, window: float = 60.0, block: float = 60.0) -> None:
        self.max_failures, self.window, self.block = max_failures, window, block
        self.failures: dict[str, deque] = defaultdict(deque)
        self.blocked_until: dict[str, float] = {}
        self.lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        until = self.blocked_until.get(client, 0.0)
        return max(0.0, until - time.monotonic())

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self.lock:
            q = self.failures[client]
            q.append(now)
            while q and q[0] < now - self.window:
                q.popleft()
            if len(q) >= self.max_failures:
                self.blocked_until[client] = now + self.block
                q.clear()


# ---------------------------------------------------------------- events webhook


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


_EVENTS_SCHEMA = """
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
"""


def event_hash(event: dict) -> str:
    """The identity of an event's content (what a replay must repeat exactly)."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:32]


class EventSink:
    """Group commit of webhook events into landing files; one writer thread owns the files and the ledger."""

    def __init__(self, settings: Settings, flush_ms: float = 5.0) -> None:
        self.settings = settings
        self.flush_s = flush_ms / 1000
        self.queue: queue.Queue[_Submission | None] = queue.Queue()
        self.db_path = settings.home / "serving" / "events.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
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
        con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        con.execute("pragma journal_mode=wal")
        con.execute("pragma synchronous=full")
        con.executescript(_EVENTS_SCHEMA)
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
            except Exception as exc:  # noqa: BLE001 — nothing was acknowledged: every request of the group fails
                log.exception("writing %d webhook requests failed", len(batch))
                for s in batch:
                    if not s.future.done():
                        s.future.set_exception(exc)
        con.close()

    def _commit(self, con: sqlite3.Connection, batch: list[_Submission]) -> None:
        now = datetime.now(UTC)
        day = now.date().isoformat()
        received_at = now.isoformat(timespec="milliseconds")
        # what was accepted before, for every id in the group
        known: dict[tuple[str, str], tuple[str, str, str]] = {}
        for tenant_id in {s.tenant_id for s in batch}:
            ids = list({e["event_id"] for s in batch if s.tenant_id == tenant_id for e in s.events})
            for i in range(0, len(ids), 900):
                chunk = ids[i : i + 900]
                rows = con.execute(
                    f"select event_id, body_hash, receipt_id, received_at from api_events where tenant_id = ? "
                    f"and event_id in ({','.join('?' * len(chunk))})", [tenant_id, *chunk]).fetchall()  # fmt: skip
                for eid, h, rid, at in rows:
                    known[(tenant_id, eid)] = (h, rid, at)
        used = {t: (con.execute("select accepted from api_event_days where tenant_id = ? and day = ?", [t, day]).fetchone() or (0,))[0]
                for t in {s.tenant_id for s in batch}}  # fmt: skip
        new_rows: dict[str, list[dict]] = defaultdict(list)  # tenant -> events to write
        ledger: list[tuple] = []
        answers: list[tuple[_Submission, list[dict] | Exception]] = []
        for s in batch:
            receipt = uuid.uuid4().hex[:16]
            results, fresh, conflicts = [], [], []
            seen_here: dict[str, str] = {}
            for e, h in zip(s.events, s.hashes, strict=True):
                prior = known.get((s.tenant_id, e["event_id"]))
                if prior is not None:
                    if prior[0] != h:
                        conflicts.append(e["event_id"])
                    else:  # a replay: the original answer
                        results.append({"event_id": e["event_id"], "status": "accepted", "receipt_id": prior[1],
                                        "received_at": prior[2], "replayed": True})  # fmt: skip
                    continue
                if e["event_id"] in seen_here:
                    if seen_here[e["event_id"]] != h:
                        conflicts.append(e["event_id"])
                    continue  # the same event twice in one request: accepted once
                seen_here[e["event_id"]] = h
                fresh.append((e, h))
                results.append({"event_id": e["event_id"], "status": "accepted", "receipt_id": receipt,
                                "received_at": received_at, "replayed": False})  # fmt: skip
            if conflicts:
                answers.append((s, EventConflict(conflicts)))
                continue
            if used[s.tenant_id] + len(fresh) > s.quota:
                tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
                answers.append((s, QuotaExceeded(used[s.tenant_id], s.quota, (tomorrow - now).total_seconds())))
                continue
            used[s.tenant_id] += len(fresh)
            for e, h in fresh:
                known[(s.tenant_id, e["event_id"])] = (h, receipt, received_at)
                new_rows[s.tenant_id].append(e)
                ledger.append((s.tenant_id, e["event_id"], h, receipt, received_at))
            answers.append((s, results))
        files = {}
        regions = {s.tenant_id: s.region for s in batch}
        for tenant_id, rows in new_rows.items():
            files[tenant_id] = self._write_landing(tenant_id, regions[tenant_id], now.date(), rows)
        if ledger:
            con.execute("begin immediate")
            con.executemany("insert into api_events values (?, ?, ?, ?, ?, ?)",
                            [(*r, str(files[r[0]].name)) for r in ledger])  # fmt: skip
            counts: dict[str, int] = defaultdict(int)
            for r in ledger:
                counts[r[0]] += 1
            con.executemany("insert into api_event_days values (?, ?, ?) on conflict (tenant_id, day) "
                            "do update set accepted = accepted + excluded.accepted",
                            [(t, day, n) for t, n in counts.items()])  # fmt: skip
            con.execute("commit")
        for s, answer in answers:  # acknowledged only now: files fsynced and renamed, ledger committed
            if isinstance(answer, Exception):
                s.future.set_exception(answer)
            else:
                s.future.set_result(answer)

    def _write_landing(self, tenant_id: str, region: str, day: date, rows: list[dict]) -> Path:
        folder = (self.settings.landing / f"region={validate_slug(region, 'region')}" / f"tenant={validate_slug(tenant_id)}"
                  / f"date={day.isoformat()}")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events-api-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.jsonl"
        tmp = folder / (name + ".tmp")
        with open(tmp, "wb") as f:
            for r in rows:
                f.write(json.dumps({c: r.get(c) for c in quality.LANDING_COLUMNS}, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        final = folder / name
        os.replace(tmp, final)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself is durable
        finally:
            os.close(fd)
        self.files_written += 1
        return final


# ---------------------------------------------------------------- prediction log


class PredictionLog:
    """Every answer, buffered in memory and flushed every ``interval`` seconds as JSONL files."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.root = settings.home / "prediction_log"
        self.interval = interval
        self.buffer: list[dict] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    def append(self, record: dict) -> None:
        with self.lock:
            self.buffer.append(record)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        with self.lock:
            rows, self.buffer = self.buffer, []
        groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for r in rows:
            groups[(r["region"], r["tenant_id"], r["at"][:10])].append(r)
        for (region, tenant_id, day), recs in groups.items():
            folder = self.root / f"region={region}" / f"tenant={tenant_id}" / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}.jsonl"
            tmp = folder / (name + ".tmp")
            with open(tmp, "w") as f:
                for r in recs:
                    f.write(json.dumps(r, separators=(",", ":"), default=str) + "\n")
            os.replace(tmp, folder / name)
        return len(rows)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.flush()


def seconds_until(ts: float) -> int:
    return max(1, math.ceil(ts))


# ---------------------------------------------------------------- A/B configuration

_SPLITS_SCHEMA = """
create table if not exists serving_splits (
    tenant_id text not null,
    kind text not null,
    challenger_percent real not null check (challenger_percent >= 0 and challenger_percent <= 100),
    updated_at text not null,
    primary key (tenant_id, kind)
);
"""


def set_split(tenant_id: str, kind: str, percent: float, settings: Settings) -> None:
    """Send ``percent`` of a tenant's users (by a stable hash) to its challenger; 0 ends the test."""
    from ml.tenants import TenantError, TenantRegistry

    TenantRegistry(settings).get(validate_slug(tenant_id))
    if kind not in MODEL_KINDS:
        raise TenantError(f"tenant {tenant_id}: unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    if not 0 <= percent <= 100:
        raise TenantError(f"tenant {tenant_id}: the challenger share must be between 0 and 100 percent, not {percent}")
    with sqlite3.connect(settings.registry_db, timeout=30) as con:
        con.executescript(_SPLITS_SCHEMA)
        con.execute("insert or replace into serving_splits values (?, ?, ?, ?)",
                    [tenant_id, kind, float(percent), datetime.now(UTC).isoformat(timespec="seconds")])  # fmt: skip


def splits(settings: Settings) -> dict[tuple[str, str], float]:
    """(tenant, kind) -> percent of users served by the challenger."""
    if not settings.registry_db.exists():
        return {}
    with sqlite3.connect(settings.registry_db, timeout=30) as con:
        con.executescript(_SPLITS_SCHEMA)
        return {(t, k): p for t, k, p in con.execute("select tenant_id, kind, challenger_percent from serving_splits")}
