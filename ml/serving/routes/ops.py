"""Liveness, readiness and Prometheus metrics.

``/healthz`` is open and says nothing about tenants. ``/readyz`` answers its status code (200
ready, 503 not yet) to anyone, and its detail (tenants, versions, load errors) only with the ops
token; ``/metrics`` asks for the token (401 without). The token: ``TENANTFLOW_SERVE_OPS_TOKEN``,
or the one generated into the home's secrets at first start (:attr:`ml.core.layout.Layout.ops_token`).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ml.serving.deps import serving_state
from ml.serving.errors import ApiError
from ml.serving.state import ServingState

router = APIRouter(tags=["operations"])


def _has_ops_token(request: Request, state: ServingState) -> bool:
    auth = request.headers.get("authorization", "")
    presented = auth[7:] if auth[:7].lower() == "bearer " else ""
    return hmac.compare_digest(presented.encode(), state.ops_token.encode())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, state: ServingState = Depends(serving_state)) -> Response:  # noqa: B008 — FastAPI's idiom
    """Ready once keys, tenants, published features and models were read at least once; the
    detail needs the ops token."""
    status = 200 if state.ready else 503
    if not _has_ops_token(request, state):
        return JSONResponse({"ready": state.ready}, status_code=status)
    body: dict[str, Any] = {
        "ready": state.ready,
        "tenants": len(state.tenants),
        "tenants_with_features": len(state.features),
        "models_loaded": len(state.models.models),
        "models": {".".join(k): m.version for k, m in state.models.models.items()},
        "mlflow_reachable": state.models.mlflow_ok,
        "feature_errors": state.feature_errors,
        "feature_fallbacks": state.feature_fallbacks,
        "model_errors": {".".join(k): v for k, v in state.models.last_error.items()},
    }
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def prometheus_metrics(request: Request, state: ServingState = Depends(serving_state)) -> Response:  # noqa: B008
    """Prometheus text format; needs the ops token."""
    from prometheus_client import CONTENT_TYPE_LATEST

    if not _has_ops_token(request, state):
        raise ApiError(401, "unauthenticated", "send `Authorization: Bearer <ops token>` (TENANTFLOW_SERVE_OPS_TOKEN, "
                       "or the file secrets/serving-ops-token in the Tenantflow home)")  # fmt: skip
    return Response(state.metrics.exposition(state.models.models), media_type=CONTENT_TYPE_LATEST)
