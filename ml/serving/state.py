"""Everything the request handlers read, kept fresh by a background thread.

Tenants, keys and traffic splits come from the control database; each tenant's published features
from ``published/`` (swapped when its ``CURRENT`` moves); models from the registry by alias
(:mod:`ml.serving.models`). A bad snapshot or a model that fails to load never replaces a good
one; after a restart, a tenant whose current snapshot does not load is served its newest older
one that does (``feature_fallbacks``, shown in the detailed ``/readyz``). A current snapshot that did not load
because a silo tenant's key could not be had (its key provider down, its key being restored) is not broken: it is
loaded again, after ``refresh_seconds`` (at least a second) and then twice as long each time up to
``KEY_RETRY_MAX_SECONDS`` (a provider that hangs holds up the refresh loop that often), until the key answers; so is
an older snapshot a restart fell back to. Objects loaded once and
kept until the next swap are ``gc.freeze()``d: the collector's full passes would otherwise walk
them while requests wait (100-240 ms pauses under load).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from ml.core import secret_files
from ml.core.settings import ServeSettings, Settings
from ml.core.tenant_parquet import KeyUnavailableError
from ml.core.tenants import Tenant, TenantStore
from ml.data import publish
from ml.data.publish import PublishedFeatures
from ml.models.kinds import kinds_of, online_marts
from ml.serving import keys
from ml.serving.alias_watcher import AliasWatcher
from ml.serving.limits import AuthThrottle, TokenBuckets
from ml.serving.metrics import Metrics
from ml.serving.models import MlflowUnavailable, ModelStore
from ml.serving.prediction_log import PredictionLog
from ml.serving.traffic import traffic_splits
from ml.serving.webhook import EventSink

log = logging.getLogger(__name__)

# the shortest and the longest wait between two loads of a snapshot whose tenant's key could not be had
KEY_RETRY_MIN_SECONDS, KEY_RETRY_MAX_SECONDS = 1.0, 60.0


class ServingState:
    """Everything the handlers read; replaced piecewise by the background refresher."""

    def __init__(self, settings: Settings, config: ServeSettings) -> None:
        self.settings, self.config = settings, config
        self.tenants: dict[str, Tenant] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.splits: dict[tuple[str, str], float] = {}
        self.features: dict[str, PublishedFeatures] = {}
        self.marts = online_marts()
        self.metrics = Metrics()
        self.feature_errors: dict[str, str] = {}  # tenant -> why its CURRENT snapshot did not load
        self.feature_fallbacks: dict[str, str] = {}  # tenant -> the older snapshot served instead, and why
        self.broken_older: dict[str, set[str]] = {}  # tenant -> older snapshots a fallback found broken (for good)
        # tenant -> (the snapshot its key could not open: its current one, or an older one a restart fell back to;
        # when to load it again; the wait before that)
        self.key_retry: dict[str, tuple[str, float, float]] = {}
        self.models = ModelStore(settings)
        self.buckets = TokenBuckets()
        self.throttle = AuthThrottle(config.auth_failures, 60.0, config.auth_block_seconds)
        self.ops_token = config.ops_token or secret_files.generated(settings.stores.ops_token)
        self.sink = EventSink(settings, config.flush_ms)
        self.plog = PredictionLog(settings, config.log_interval)
        self.ready = False
        self.stop = threading.Event()
        self.watcher = AliasWatcher(settings, config.refresh_seconds)
        self.aliases: dict[str, dict[str, str]] | MlflowUnavailable | None = None
        self.applied: tuple[list, float, bool] = ([], 0.0, False)  # wanted, when, whether a load failed
        self.thread = threading.Thread(target=self._loop, name="refresher", daemon=True)

    def watch(self) -> None:
        """Tenants, keys, traffic splits and published snapshots (cheap: SQLite reads and a file per tenant)."""
        self.tenants = {t.tenant_id: t for t in TenantStore(self.settings).list()}
        self.keys = keys.active_hashes(self.settings)
        self.splits = traffic_splits(self.settings)
        for tid, t in self.tenants.items():
            meta = publish.current(self.settings, t.region, tid)
            have = self.features.get(tid)
            if meta is None:
                continue
            if have is not None and have.snapshot_id == meta["snapshot_id"]:
                self.feature_errors.pop(tid, None)  # (CURRENT moved back to the snapshot served)
                self.feature_fallbacks.pop(tid, None)
                self.key_retry.pop(tid, None)
                continue
            if self.feature_errors.get(tid, "").startswith(f"{meta['snapshot_id']}:"):  # it did not load
                waiting = self._key_retry_due(tid)
                if waiting != meta["snapshot_id"]:  # snapshots are immutable: a broken one stays broken until
                    if waiting is not None and have is None:  # CURRENT moves; an older one that waited on the key
                        self._fall_back(tid, t, meta["snapshot_id"])  # is tried again
                    continue
            if have is not None and self._waits_on_key(tid) not in (None, meta["snapshot_id"]):
                del self.key_retry[tid]  # CURRENT moved on from a snapshot that waited on its key (nothing older does:
                # one is served)
            loaded = self._load(tid, meta)
            if loaded is not None:
                self.features[tid] = loaded  # atomic swap
                self.feature_errors.pop(tid, None)
                self.feature_fallbacks.pop(tid, None)
            elif have is None and self._waits_on_key(tid) != meta["snapshot_id"]:  # a restart: the newest
                # older snapshot that loads, rather than nothing (not for a key problem: an older one needs that key)
                self._fall_back(tid, t, meta["snapshot_id"])
            elif tid in self.feature_fallbacks:  # CURRENT moved on from the broken one, to one that does not load
                self._fallback_note(tid, meta["snapshot_id"])
        for gone in (set(self.features) | set(self.feature_errors)) - set(self.tenants):  # a removed tenant's
            for held in (self.features, self.feature_errors, self.feature_fallbacks, self.key_retry, self.broken_older):
                held.pop(gone, None)

    def _waits_on_key(self, tid: str) -> str | None:
        """The tenant's snapshot that failed to load for its key alone, waiting to be loaded again; else None."""
        return self.key_retry[tid][0] if tid in self.key_retry else None

    def _key_retry_due(self, tid: str) -> str | None:
        """The tenant's snapshot that failed to load for its key alone (its current one, or an older one a restart
        fell back to) once its wait is over; else None."""
        snapshot, at, _ = self.key_retry.get(tid, (None, 0.0, 0.0))
        return snapshot if time.monotonic() >= at else None

    def _load(self, tid: str, meta: dict) -> PublishedFeatures | None:
        try:
            loaded = PublishedFeatures.load(meta, self.marts, self.settings)
        except KeyUnavailableError as exc:  # the tenant's key, not the snapshot: loaded again after a wait
            snapshot = meta["snapshot_id"]
            before, _, waited = self.key_retry.get(tid, ("", 0.0, 0.0))
            wait = max(self.config.refresh_seconds, KEY_RETRY_MIN_SECONDS, 2 * waited if before == snapshot else 0)
            wait = min(KEY_RETRY_MAX_SECONDS, wait)
            self.key_retry[tid] = (snapshot, time.monotonic() + wait, wait)
            self.feature_errors[tid] = f"{snapshot}: {type(exc).__name__}: {exc}"
            if before != snapshot:  # (said once, not at every retry)
                log.error("tenant %s: could not load published features: %s", tid, self.feature_errors[tid])
            return None
        except Exception as exc:
            log.exception("tenant %s: could not load published features %s", tid, meta["snapshot_id"])
            self.feature_errors[tid] = f"{meta['snapshot_id']}: {type(exc).__name__}: {exc}"
            if self._waits_on_key(tid) == meta["snapshot_id"]:  # its key answered: the snapshot is broken
                del self.key_retry[tid]
            return None
        if self.key_retry.pop(tid, None) is not None:
            log.info("tenant %s: its key answered again", tid)
        log.info("tenant %s: serving features %s (cutoff %s)", tid, loaded.snapshot_id, loaded.serving_cutoff)
        return loaded

    def _fall_back(self, tid: str, t: Tenant, broken: str) -> None:
        error = self.feature_errors[tid]
        for meta in publish.older(self.settings, t.region, tid, than=broken):
            if meta["snapshot_id"] in self.broken_older.get(tid, ()):
                continue  # snapshots are immutable: not loaded (and logged) again at every retry of a key
            loaded = self._load(tid, meta)
            if loaded is None and self._waits_on_key(tid) == meta["snapshot_id"]:
                break  # its key could not be had: every older snapshot needs it too (tried again after a wait)
            if loaded is None:
                self.broken_older.setdefault(tid, set()).add(meta["snapshot_id"])
            else:
                self.features[tid] = loaded
                self._fallback_note(tid, broken)
                break
        self.feature_errors[tid] = error  # the current one's error, not an older one's

    def _fallback_note(self, tid: str, current: str) -> None:
        """``feature_fallbacks``' note: the older snapshot served (``features``) and the current one, which does not
        load."""
        served = self.features[tid]
        note = f"serving {served.snapshot_id} (published {served.published_at}): "
        note += f"the current snapshot {current} does not load"
        if self.feature_fallbacks.get(tid) != note:  # (said once, not at every retry of a key)
            self.feature_fallbacks[tid] = note
            log.warning("tenant %s: %s", tid, note)

    def wanted_models(self) -> list[tuple[str, str, str]]:
        """(tenant, kind, arm) of every model to hold: each tenant's champions, and challengers where split."""
        out = []
        for tid, t in self.tenants.items():
            for kind in kinds_of(t):
                out.append((tid, kind.name, "champion"))
                if self.splits.get((tid, kind.name), 0) > 0:
                    out.append((tid, kind.name, "challenger"))
        return out

    def sync_models(self, wait: float = 0.0) -> dict[str, int] | None:
        """Load what the registry's aliases moved (the watcher process asks MLflow for them).

        Applies when new aliases arrived, when the wanted models changed (a tenant, a split),
        and every ``refresh_seconds`` while a load keeps failing.
        """
        news = self.watcher.latest(wait)
        if news is not None:
            self.aliases = news
        if self.aliases is None:
            return None
        wanted = self.wanted_models()
        last_wanted, at, failing = self.applied
        if news is None and wanted == last_wanted and not (failing and time.time() - at >= self.config.refresh_seconds):
            return None
        counts = self.models.apply(wanted, self.aliases)
        self.applied = (wanted, time.time(), counts["failed"] > 0)
        return counts

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                before = self._loaded()
                self.watch()
                self.sync_models(wait=0.0 if self.ready else 60.0)  # ready means the models are loaded
                if self._loaded() != before:
                    # what was just loaded lives until the next swap: keep it out of the collector's
                    # full passes, which would otherwise walk it while requests wait
                    gc.collect()
                    gc.freeze()
                self.ready = True
            except Exception:
                log.exception("refresh failed")
            self.stop.wait(self.config.watch_seconds)

    def _loaded(self) -> set[int]:
        """Identities of the feature snapshots and models in memory (what a swap changes)."""
        return {id(v) for v in self.features.values()} | {id(m) for m in self.models.models.values()}

    def close(self) -> None:
        self.stop.set()
        self.watcher.close()
        self.sink.close()
        self.plog.close()
