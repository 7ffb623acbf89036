"""The serving API: each tenant's product calls Tenantflow over HTTP (FastAPI on uvicorn).

``tenantflow serve --host H --port P`` (and ``make up``) runs it. Under ``/v1``, with
``Authorization: Bearer <key>`` (``tenantflow tenants keys create TENANT``):

* ``POST /v1/events``: a batch of the caller's events, validated, written durably to
  ``landing/`` (acknowledged only after fsync and rename), idempotent by ``event_id``; the
  ingest DAG picks the files up like any other drop.
* one ``POST /v1/...`` per model kind, each kind's ``endpoint`` (:mod:`ml.models.kinds`); e.g.
  ``/v1/recommendations``: top-k items for a user from the tenant's champion, or the cold-start
  list for an unknown user (``explain`` adds each item's top feature contributions).
* ``GET /healthz`` (liveness, nothing tenant-specific), ``GET /readyz`` (readiness: its status
  code for anyone, the per-tenant detail with the ops token), ``GET /metrics`` (Prometheus, with
  the ops token: ``Authorization: Bearer <token>``, the token in ``TENANTFLOW_SERVE_OPS_TOKEN`` or
  generated into ``<home>/secrets/serving-ops-token``), ``GET /docs`` and ``GET /redoc`` (the OpenAPI
  spec in Swagger UI and ReDoc, their assets served here: no CDN).

The tenant of a request comes only from its key; a body or ``X-Tenant-Id`` header naming
another tenant is refused (403). Per-tenant rate limits (``quota_requests_per_minute``) and
daily event quotas (``quota_events_per_day``) answer 429 with ``Retry-After``; repeated bad
keys from one client are throttled the same way. A tenant may split its traffic between
champion and challenger (``tenantflow tenants ab``); every answer names the arm and the model
version, and goes to the prediction log. The service never opens a warehouse: features come
from the snapshots the features DAG publishes (:mod:`ml.data.publish`), models from the MLflow
registry by alias, both swapped in the background without a restart.

Composition only: state (``state``), key checks (``auth``), routes (``routes``), errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from ml.core.layout import keep_private
from ml.core.settings import ServeSettings, Settings, get_settings
from ml.models.kinds import all_kinds
from ml.serving.auth import Admission
from ml.serving.errors import install_handlers
from ml.serving.routes import events, ops, predictions
from ml.serving.state import ServingState


def create_app(settings: Settings | None = None, config: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application (uvicorn runs it; tests and the benchmark start it over HTTP)."""
    keep_private()  # prediction logs, webhook landing files and the ledger are tenants' data
    # MLflow being down must cost a request to it one short timeout, never minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    settings = settings or get_settings()
    state = ServingState(settings, config or settings.serve)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        state.close()

    # /docs (Swagger UI) and /redoc from assets the package ships (under /static-offline-docs), not
    # from a CDN: they open on a machine without internet, as the API itself does
    app = FastAPIOffline(
        title="Tenantflow serving API",
        version="1",
        lifespan=lifespan,
        description=_markdown((__doc__ or "").split("\n\n", 1)[-1].split("\n\nComposition only")[0]),
    )
    app.state.serving = state
    install_handlers(app, state.metrics)
    app.add_middleware(Admission, state=state)
    app.add_middleware(DocsPolicy)
    app.include_router(events.router)
    app.include_router(predictions.router(all_kinds()))
    app.include_router(ops.router)
    paths = [getattr(route, "path", "") for route in app.routes]
    if any("{" in p for p in paths):  # a developer's error, caught by every test that starts the app
        raise RuntimeError("a route has path parameters: label metrics by route.matches, not by path")
    state.metrics.routes = frozenset(paths)
    return app


# Swagger UI and ReDoc may load only what this server serves (inline scripts and styles are theirs,
# ReDoc's search runs in a blob worker): ReDoc's bundle still fetches its footer logo from
# cdn.redoc.ly, which the browser now never asks for (offline, or online: no third-party request).
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class DocsPolicy:
    """Pure ASGI middleware: the docs pages' responses carry :data:`DOCS_POLICY` as their
    ``Content-Security-Policy`` (W3C CSP Level 3)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PATHS:
            return await self.app(scope, receive, send)

        async def with_policy(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", DOCS_POLICY.encode())]
            await send(message)

        await self.app(scope, receive, with_policy)


def _markdown(rst: str) -> str:
    """This module's docstring as the OpenAPI description (Markdown): ``:mod:`x``` and ````x```` become ```x```."""
    return re.sub(r":\w+:`([^`]+)`", r"`\1`", rst).replace("``", "`")


def run(host: str, port: int, settings: Settings | None = None) -> None:
    """``tenantflow serve``: uvicorn with one worker (rate limits and the event ledger live in it)."""
    import uvicorn

    settings = settings or get_settings()
    proxies = [p.strip() for p in settings.serve.trusted_proxies.split(",") if p.strip()]
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        # X-Forwarded-For names the client only behind a configured proxy (the bad-key throttle
        # counts per client): uvicorn's default trusts it from loopback
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )
