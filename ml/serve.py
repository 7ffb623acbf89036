"""The serving API: each tenant's product calls Tenantflow over HTTP (FastAPI on uvicorn).

``tenantflow serve --host H --port P`` (and ``make up``) runs it. Under ``/v1``, with
``Authorization: Bearer <key>`` (``tenantflow tenants keys create TENANT``):

* ``POST /v1/events``: a batch of the caller's events, validated, written durably to
  ``landing/`` (acknowledged only after fsync and rename), idempotent by ``event_id``; the
  ingest DAG picks the files up like any other drop.
* ``POST /v1/recommendations``: top-k items for a user from the tenant's champion (its
  published candidates re-ranked by LightGBM), or the cold-start list for an unknown user;
  ``explain`` adds each item's top feature contributions.
* ``POST /v1/churn-scores``: churn probabilities for a list of users.
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``GET /docs`` (OpenAPI).

The tenant of a request comes only from its key; a body or ``X-Tenant-Id`` header naming
another tenant is refused (403). Per-tenant rate limits (``quota_requests_per_minute``) and
daily event quotas (``quota_events_per_day``) answer 429 with ``Retry-After``; repeated bad
keys from one client are throttled the same way. A tenant may split its traffic between
champion and challenger (``tenantflow tenants ab``); every answer names the arm and the model
version, and goes to the prediction log. The service never opens a warehouse: features come
from the snapshots the features DAG publishes (``ml.publish``), models from the MLflow
registry by alias, both swapped in the background without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from fastapi import Request  # module level: FastAPI resolves handler annotations here
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ml import apikeys, publish, quality
from ml.online import (
    AliasWatcher,
    AuthThrottle,
    EventConflict,
    EventSink,
    MlflowUnavailable,
    ModelStore,
    OnlineFeatures,
    PredictionLog,
    QuotaExceeded,
    TokenBuckets,
    in_challenger_arm,
    seconds_until,
    splits,
)
from ml.settings import Settings, dataclass_from_env, get_settings
from ml.tenants import Tenant, TenantRegistry

log = logging.getLogger("tenantflow.serve")

EventType = Literal[quality.ALLOWED_EVENT_TYPES]  # type: ignore[valid-type]


@dataclass(frozen=True)
class ServeConfig:
    """Service settings; each can be set as ``TENANTFLOW_SERVE_<FIELD>``."""

    refresh_seconds: float = 5.0  # how often aliases are checked in MLflow
    watch_seconds: float = 1.0  # how often keys, tenants, splits and published snapshots are re-read
    max_body_bytes: int = 1_048_576
    max_events: int = 1_000  # per request
    flush_ms: float = 5.0  # webhook group commit window
    auth_failures: int = 20  # bad keys per client per minute before it is throttled
    auth_block_seconds: float = 60.0
    log_interval: float = 1.0  # prediction log flush

    @classmethod
    def from_env(cls) -> ServeConfig:
        return dataclass_from_env(cls, "TENANTFLOW_SERVE_")


# ---------------------------------------------------------------- request and answer bodies


class EventIn(BaseModel):
    """One product event, as in the landing contract; ``tenant_id`` is optional and must be the key's."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")
    user_id: str = Field(min_length=1, max_length=128)
    item_id: str | None = Field(None, min_length=1, max_length=128)
    event_type: EventType
    event_at: AwareDatetime = Field(description="When it happened, with a timezone (ISO 8601)")
    session_id: str | None = Field(None, max_length=128)
    dwell_seconds: float | None = Field(None, ge=0, le=86_400)
    topic: str | None = Field(None, max_length=64)
    device: str | None = Field(None, max_length=32)

    @field_validator("event_at")
    @classmethod
    def _plausible_time(cls, v: datetime) -> datetime:
        now = datetime.now(UTC)
        if v > now + quality.CLOCK_SKEW:
            raise ValueError(f"is in the future (more than {quality.CLOCK_SKEW} ahead of the server clock)")
        if v < now - quality.MAX_LATENESS:
            raise ValueError(f"is older than {quality.MAX_LATENESS.days} days; send old history as a batch file")
        return v

    @model_validator(mode="after")
    def _item_events_name_an_item(self) -> EventIn:
        if self.event_type in quality.ITEM_EVENT_TYPES and not self.item_id:
            raise ValueError(f"item_id is required for event_type {self.event_type!r}")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, description="At most TENANTFLOW_SERVE_MAX_EVENTS (1000) per request")


class EventResult(BaseModel):
    event_id: str
    status: Literal["accepted"]
    receipt_id: str
    received_at: str
    replayed: bool = Field(description="True when this event id was accepted before: the original answer is returned")


class EventsAnswer(BaseModel):
    tenant_id: str
    accepted: int
    replayed: int
    events: list[EventResult]


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=128)
    k: int = Field(10, ge=1, le=100)
    context: dict[str, str | int | float | bool] | None = Field(
        None, description="Recorded in the prediction log; today's models do not use it")
    exclude: list[str] = Field(default_factory=list, max_length=1_000, description="Item ids never to return")
    explain: bool = Field(False, description="Add each item's top feature contributions")
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")


class Contribution(BaseModel):
    feature: str
    value: float
    contribution: float


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    score: float | None
    explanation: list[Contribution] | None = None


class ModelRef(BaseModel):
    name: str
    version: str
    trained_on: str


class RecommendationAnswer(BaseModel):
    tenant_id: str
    user_id: str
    arm: Literal["champion", "challenger", "cold_start"]
    model: ModelRef | None
    items: list[RecommendedItem]
    features_snapshot: str | None
    request_id: str


class ChurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[str] = Field(min_length=1, max_length=1_000)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")


class ChurnScore(BaseModel):
    user_id: str
    churn_probability: float | None = Field(description="None for a user without features (unknown or inactive)")
    arm: Literal["champion", "challenger"] | None
    model_version: str | None


class ChurnAnswer(BaseModel):
    tenant_id: str
    model: str
    scores: list[ChurnScore]
    unknown_users: int
    request_id: str


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, tenant_id: str | None = None,
                 retry_after: float | None = None, details: list | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.tenant_id, self.retry_after, self.details = tenant_id, retry_after, details

    def body(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.tenant_id:
            err["tenant_id"] = self.tenant_id
        if self.details:
            err["details"] = self.details
        return {"error": err}


# ---------------------------------------------------------------- state


class ServingState:
    """Everything the handlers read; replaced piecewise by the background refresher."""

    def __init__(self, settings: Settings, config: ServeConfig) -> None:
        self.settings, self.config = settings, config
        self.tenants: dict[str, Tenant] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.splits: dict[tuple[str, str], float] = {}
        self.features: dict[str, OnlineFeatures] = {}
        self.feature_errors: dict[str, str] = {}
        self.models = ModelStore(settings)
        self.buckets = TokenBuckets()
        self.throttle = AuthThrottle(config.auth_failures, 60.0, config.auth_block_seconds)
        self.sink = EventSink(settings, config.flush_ms)
        self.plog = PredictionLog(settings, config.log_interval)
        self.ready = False
        self.stop = threading.Event()
        self.watcher = AliasWatcher(settings, config.refresh_seconds)
        self.aliases: dict[str, dict[str, str]] | MlflowUnavailable | None = None
        self.applied: tuple[list, float, bool] = ([], 0.0, False)  # wanted, when, whether a load failed
        self.thread = threading.Thread(target=self._loop, name="refresher", daemon=True)

    def watch(self) -> None:
        """Registry, keys, splits and published snapshots (cheap: SQLite reads and a file per tenant)."""
        self.tenants = {t.tenant_id: t for t in TenantRegistry(self.settings).list()}
        self.keys = apikeys.active_hashes(self.settings)
        self.splits = splits(self.settings)
        for tid, t in self.tenants.items():
            meta = publish.current(self.settings, t.region, tid)
            have = self.features.get(tid)
            if meta is None or (have is not None and have.snapshot_id == meta["snapshot_id"]):
                continue
            try:
                from pathlib import Path

                loaded = OnlineFeatures.load(Path(meta["path"]), meta["snapshot_id"], meta.get("serving_cutoff"))
            except Exception as exc:  # noqa: BLE001 — a bad snapshot never replaces a good one
                log.exception("tenant %s: could not load published features %s", tid, meta["snapshot_id"])
                self.feature_errors[tid] = f"{meta['snapshot_id']}: {type(exc).__name__}: {exc}"
                continue
            self.features[tid] = loaded  # atomic swap
            self.feature_errors.pop(tid, None)
            log.info("tenant %s: serving features %s (cutoff %s)", tid, loaded.snapshot_id, loaded.serving_cutoff)
        for gone in set(self.features) - set(self.tenants):
            del self.features[gone]

    def wanted_models(self) -> list[tuple[str, str, str]]:
        out = []
        for tid, t in self.tenants.items():
            for kind in t.model_kinds:
                out.append((tid, kind, "champion"))
                if self.splits.get((tid, kind), 0) > 0:
                    out.append((tid, kind, "challenger"))
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
        import gc

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
            except Exception:  # noqa: BLE001 — the next round tries again; what is loaded keeps serving
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


# ---------------------------------------------------------------- the app


def create_app(settings: Settings | None = None, config: ServeConfig | None = None):
    """The FastAPI application (uvicorn runs it; tests and the benchmark start it over HTTP)."""
    # MLflow being down must cost a request to it one short timeout, never minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    from contextlib import asynccontextmanager

    import msgspec
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
    from starlette.datastructures import Headers

    settings = settings or get_settings()
    config = config or ServeConfig.from_env()
    state = ServingState(settings, config)

    metrics = CollectorRegistry()
    requests_total = Counter("tenantflow_requests_total", "Requests answered", ["tenant", "endpoint", "status", "model_version"],
                             registry=metrics)  # fmt: skip
    latency = Histogram("tenantflow_request_seconds", "Time to answer", ["tenant", "endpoint", "model_version"], registry=metrics,
                        buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0))  # fmt: skip
    events_total = Counter("tenantflow_events_accepted_total", "Webhook events acknowledged", ["tenant", "replayed"],
                           registry=metrics)  # fmt: skip
    serving = Gauge("tenantflow_serving_model_version", "Version served per tenant, kind and arm",
                    ["tenant", "kind", "arm"], registry=metrics)  # fmt: skip
    encode = msgspec.json.Encoder().encode

    @asynccontextmanager
    async def lifespan(app):
        state.start()
        yield
        state.close()

    app = FastAPI(title="Tenantflow serving API", version="1", lifespan=lifespan,
                  description=(__doc__ or "").split("\n\n", 1)[-1])  # fmt: skip
    app.state.serving = state

    def answer(data: Any, status: int = 200, headers: dict | None = None) -> Response:
        return Response(encode(data), status_code=status, media_type="application/json", headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        headers = {"Retry-After": str(seconds_until(exc.retry_after))} if exc.retry_after is not None else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        requests_total.labels(exc.tenant_id or "-", request.url.path, str(exc.status), "-").inc()
        return answer(exc.body(), exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]} for e in exc.errors()]
        tenant = getattr(request.state, "tenant_id", None)
        requests_total.labels(tenant or "-", request.url.path, "422", "-").inc()
        first = details[0] if details else {"field": "body", "reason": "invalid"}
        return JSONResponse({"error": {"code": "invalid_request", "tenant_id": tenant,
                                       "message": f"{first['field'] or 'body'}: {first['reason']}"
                                                  + (f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""),
                                       "details": details}}, status_code=422)  # fmt: skip

    def admit(headers, client: str) -> Tenant:
        """Body size, then key → tenant, then the tenant's rate limit: before any body is read."""
        size = int(headers.get("content-length") or 0)
        if size > config.max_body_bytes:
            raise ApiError(413, "body_too_large", f"the body has {size:,} bytes; the limit is {config.max_body_bytes:,} "
                                                  f"(send at most {config.max_events} events per request)")  # fmt: skip
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raise ApiError(411, "length_required", "send a Content-Length header (chunked bodies are not accepted)")
        wait = state.throttle.retry_after(client)
        if wait > 0:
            raise ApiError(429, "too_many_bad_keys", "too many requests with invalid API keys from this client; "
                                                     "check the key and retry later", retry_after=wait)  # fmt: skip
        auth = headers.get("authorization", "")
        tenant_id = apikeys.verify(auth[7:], state.keys) if auth[:7].lower() == "bearer " else None
        if tenant_id is None:
            state.throttle.failed(client)
            raise ApiError(401, "unauthenticated", "missing, invalid or revoked API key: send `Authorization: Bearer <key>` "
                                                   "with a key from `tenantflow tenants keys create TENANT`")  # fmt: skip
        named = headers.get("x-tenant-id")
        if named is not None and named != tenant_id:
            raise ApiError(403, "wrong_tenant", f"this API key belongs to tenant {tenant_id}; it cannot act for {named!r}",
                           tenant_id)  # fmt: skip
        tenant = state.tenants.get(tenant_id)
        if tenant is None:
            raise ApiError(403, "tenant_unknown", f"tenant {tenant_id} is not in the registry any more", tenant_id)
        wait = state.buckets.take(tenant_id, tenant.quota_requests_per_minute)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"tenant {tenant_id} is over its {tenant.quota_requests_per_minute:,} "
                                                "requests per minute; retry after the Retry-After seconds",
                           tenant_id, retry_after=wait)  # fmt: skip
        return tenant

    class Admission:
        """Pure ASGI middleware running :func:`admit` on ``/v1/`` (Starlette's BaseHTTPMiddleware
        costs a task and a stream per request, measurable at these latencies)."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
                return await self.app(scope, receive, send)
            client = scope["client"][0] if scope.get("client") else "-"
            try:
                tenant = admit(Headers(scope=scope), client)
            except ApiError as exc:
                response = await _api_error(Request(scope), exc)
                return await response(scope, receive, send)
            scope.setdefault("state", {}).update(tenant_id=tenant.tenant_id, tenant=tenant)
            await self.app(scope, receive, send)

    app.add_middleware(Admission)

    def _same_tenant(request: Request, named: str | None) -> Tenant:
        tenant: Tenant = request.state.tenant
        if named is not None and named != tenant.tenant_id:
            raise ApiError(403, "wrong_tenant", f"this API key belongs to tenant {tenant.tenant_id}; it cannot act for "
                                                f"{named!r}", tenant.tenant_id)  # fmt: skip
        return tenant

    def _observe(tenant_id: str, endpoint: str, version: str, started: float) -> float:
        seconds = time.perf_counter() - started
        latency.labels(tenant_id, endpoint, version).observe(seconds)
        requests_total.labels(tenant_id, endpoint, "200", version).inc()
        return seconds * 1000

    @app.post("/v1/events", response_model=EventsAnswer, tags=["events"],
              responses={409: {"description": "an event id was accepted before with a different body"},
                         413: {"description": "body too large"}, 429: {"description": "rate limit or daily quota"}})  # fmt: skip
    async def post_events(batch: EventBatch, request: Request):
        """Acknowledged only once the events are durably in `landing/` (fsync, atomic rename)."""
        started = time.perf_counter()
        tenant = request.state.tenant
        if len(batch.events) > config.max_events:
            raise ApiError(413, "too_many_events", f"{len(batch.events):,} events in one request; send at most "
                                                   f"{config.max_events:,}", tenant.tenant_id)  # fmt: skip
        rows = []
        for e in batch.events:
            _same_tenant(request, e.tenant_id)
            row = e.model_dump()
            row["tenant_id"] = tenant.tenant_id
            row["event_at"] = e.event_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            rows.append(row)
        fut = state.sink.submit(tenant.tenant_id, tenant.region, tenant.quota_events_per_day, rows)
        try:
            results = await asyncio.wrap_future(fut)
        except EventConflict as exc:
            raise ApiError(409, "event_id_conflict", f"tenant {tenant.tenant_id}: event ids {exc.event_ids[:10]} were accepted "
                                                     "before with a different body; an event id names one event forever. "
                                                     "Nothing of this request was written", tenant.tenant_id) from None  # fmt: skip
        except QuotaExceeded as exc:
            raise ApiError(429, "daily_event_quota", f"tenant {tenant.tenant_id}: {exc}; nothing of this request was written",
                           tenant.tenant_id, retry_after=exc.retry_after) from None  # fmt: skip
        replayed = sum(r["replayed"] for r in results)
        events_total.labels(tenant.tenant_id, "false").inc(len(results) - replayed)
        events_total.labels(tenant.tenant_id, "true").inc(replayed)
        _observe(tenant.tenant_id, "/v1/events", "-", started)
        return answer({"tenant_id": tenant.tenant_id, "accepted": len(results) - replayed, "replayed": replayed,
                       "events": results})  # fmt: skip

    @app.post("/v1/recommendations", response_model=RecommendationAnswer, tags=["predictions"])
    async def post_recommendations(req: RecommendationRequest, request: Request):
        """Top-k items for one user from the tenant's champion (or challenger arm); cold start for unknown users."""
        started = time.perf_counter()
        tenant = _same_tenant(request, req.tenant_id)
        tid = tenant.tenant_id
        feats = state.features.get(tid)
        if feats is None:
            raise ApiError(503, "no_features", f"tenant {tid} has no published features yet: run the features DAG "
                                               "(it publishes them for the API)", tid)  # fmt: skip
        arm = "challenger" if in_challenger_arm(tid, req.user_id, state.splits.get((tid, "recommender"), 0)) else "champion"
        model = state.models.get(tid, "recommender", arm)
        if model is None and arm == "challenger":
            arm, model = "champion", state.models.get(tid, "recommender", "champion")
        found = feats.candidates(req.user_id)
        excluded = set(req.exclude)
        items: list[dict] = []
        if found is None or model is None:
            arm = "cold_start"
            for item_id in feats.cold_start:
                if item_id not in excluded:
                    items.append({"rank": len(items) + 1, "item_id": item_id, "score": None})
                    if len(items) == req.k:
                        break
        else:
            ids, rows = found
            x = rows[:, model.columns_in(feats.columns)]
            scores = model.predict(x)
            if excluded:
                scores = np.where(np.isin(ids, list(excluded)), -np.inf, scores)
            order = np.argsort(-scores, kind="stable")[: req.k]
            order = order[np.isfinite(scores[order])]
            contrib = model.contributions(x[order]) if req.explain and len(order) else None
            for r, i in enumerate(order):
                entry: dict[str, Any] = {"rank": r + 1, "item_id": str(ids[i]), "score": float(scores[i])}
                if contrib is not None:
                    top = np.argsort(-np.abs(contrib[r, :-1]))[:3]
                    entry["explanation"] = [{"feature": model.features[j], "value": float(x[i, j]),
                                             "contribution": float(contrib[r, j])} for j in top]  # fmt: skip
                items.append(entry)
        ref = {"name": model.name, "version": model.version, "trained_on": model.trained_on} if arm != "cold_start" and model else None
        version = f"v{model.version}" if ref and model else "cold_start"
        request_id = uuid.uuid4().hex
        ms = _observe(tid, "/v1/recommendations", version, started)
        state.plog.append({"at": datetime.now(UTC).isoformat(), "request_id": request_id, "tenant_id": tid,
                           "region": tenant.region, "endpoint": "recommendations", "user_id": req.user_id,
                           "items": [i["item_id"] for i in items], "model_name": ref["name"] if ref else None,
                           "model_version": ref["version"] if ref else None, "arm": arm, "latency_ms": round(ms, 3),
                           "features_snapshot": feats.snapshot_id, "context": req.context})  # fmt: skip
        return answer({"tenant_id": tid, "user_id": req.user_id, "arm": arm, "model": ref, "items": items,
                       "features_snapshot": feats.snapshot_id, "request_id": request_id})  # fmt: skip

    @app.post("/v1/churn-scores", response_model=ChurnAnswer, tags=["predictions"])
    async def post_churn_scores(req: ChurnRequest, request: Request):
        """Churn probabilities for the tenant's users (None for users without features)."""
        started = time.perf_counter()
        tenant = _same_tenant(request, req.tenant_id)
        tid = tenant.tenant_id
        feats = state.features.get(tid)
        champion = state.models.get(tid, "churn", "champion")
        if feats is None or champion is None:
            raise ApiError(503, "no_churn_model", f"tenant {tid} has no churn champion or no published features yet: run "
                                                  "the features and train DAGs", tid)  # fmt: skip
        percent = state.splits.get((tid, "churn"), 0)
        by_arm: dict[str, list[tuple[int, int]]] = {"champion": [], "challenger": []}
        scores: list[dict] = []
        for pos, user in enumerate(req.user_ids):
            row = feats.churn_users.get(user)
            scores.append({"user_id": user, "churn_probability": None, "arm": None, "model_version": None})
            if row is not None:
                arm = "challenger" if in_challenger_arm(tid, user, percent) and state.models.get(tid, "churn", "challenger") else "champion"
                by_arm[arm].append((pos, row))
        for arm, picks in by_arm.items():
            if not picks:
                continue
            model = state.models.get(tid, "churn", arm) or champion
            x = feats.churn_matrix[[r for _, r in picks]][:, model.columns_in(feats.churn_columns)]
            for (pos, _), p in zip(picks, model.predict(x), strict=True):
                scores[pos].update(churn_probability=float(p), arm=arm, model_version=model.version)
        request_id = uuid.uuid4().hex
        ms = _observe(tid, "/v1/churn-scores", f"v{champion.version}", started)
        state.plog.append({"at": datetime.now(UTC).isoformat(), "request_id": request_id, "tenant_id": tid,
                           "region": tenant.region, "endpoint": "churn-scores", "users": len(req.user_ids),
                           "model_name": champion.name, "model_version": champion.version,
                           "arms": {a: len(p) for a, p in by_arm.items()}, "latency_ms": round(ms, 3),
                           "features_snapshot": feats.snapshot_id})  # fmt: skip
        return answer({"tenant_id": tid, "model": champion.name, "scores": scores,
                       "unknown_users": sum(s["churn_probability"] is None for s in scores), "request_id": request_id})  # fmt: skip

    @app.get("/healthz", tags=["operations"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz():
        """Ready once keys, tenants, published features and models were read at least once."""
        body = {"ready": state.ready, "tenants": len(state.tenants), "tenants_with_features": len(state.features),
                "models_loaded": len(state.models.models), "mlflow_reachable": state.models.mlflow_ok,
                "feature_errors": state.feature_errors,
                "model_errors": {".".join(k): v for k, v in state.models.last_error.items()}}  # fmt: skip
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics():
        for (tid, kind, arm), m in list(state.models.models.items()):
            serving.labels(tid, kind, arm).set(float(m.version))
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return app


def run(host: str, port: int, settings: Settings | None = None) -> None:
    """``tenantflow serve``: uvicorn with one worker (rate limits and the event ledger live in it)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=10)  # fmt: skip

