"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ml.serving.deps import serving_state
from ml.serving.state import ServingState

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: ServingState = Depends(serving_state)) -> Response:  # noqa: B008 — FastAPI's idiom
    """Ready once keys, tenants, published features and models were read at least once."""
    body: dict[str, Any] = {
        "ready": state.ready,
        "tenants": len(state.tenants),
        "tenants_with_features": len(state.features),
        "models_loaded": len(state.models.models),
        "mlflow_reachable": state.models.mlflow_ok,
        "feature_errors": state.feature_errors,
        "model_errors": {".".join(k): v for k, v in state.models.last_error.items()},
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics")
async def prometheus_metrics(state: ServingState = Depends(serving_state)) -> Response:  # noqa: B008
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(state.metrics.exposition(state.models.models), media_type=CONTENT_TYPE_LATEST)
