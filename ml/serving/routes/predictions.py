"""One ``POST /v1/...`` route per registered model kind (:attr:`ml.models.kinds.base.ModelKind.endpoint`).

The kind answers from the tenant's published features and models; this module supplies them
(:class:`RequestContext`), turns "not servable yet" into a 503, times the answer, and writes it to
the prediction log.
"""

from __future__ import annotations

import inspect
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ml.core.tenants import Tenant
from ml.data.publish import PublishedFeatures
from ml.models.kinds.base import ModelKind, NotServable, ServedModel
from ml.serving.auth import same_tenant
from ml.serving.errors import ApiError, json_response
from ml.serving.state import ServingState
from ml.serving.traffic import in_challenger_arm


class RequestContext:
    """What a kind's endpoint may use for one request (:class:`ml.models.kinds.base.ServingContext`)."""

    __slots__ = ("tenant_id", "seen_items", "features", "_state", "_kind", "_share")

    def __init__(self, state: ServingState, tenant: Tenant, kind: str) -> None:
        self.tenant_id = tenant.tenant_id
        self.seen_items = tenant.seen_items
        self.features: PublishedFeatures | None = state.features.get(tenant.tenant_id)
        self._state, self._kind = state, kind
        self._share = state.splits.get((tenant.tenant_id, kind), 0)

    def model(self, arm: str) -> ServedModel | None:
        return self._state.models.get(self.tenant_id, self._kind, arm)

    def arm(self, user_id: str) -> str:
        """``challenger`` for users in the challenger's share (when one is loaded that the published
        features can answer: one trained on columns since renamed is not), else ``champion``."""
        if self._share > 0 and in_challenger_arm(self.tenant_id, user_id, self._share):
            challenger = self.model("challenger")
            if challenger is not None and self._answerable(challenger):
                return "challenger"
        return "champion"

    def _answerable(self, model: ServedModel) -> bool:
        """A classic family (it reads the user's history), or a LightGBM model whose every feature is
        a column of one of the published tables."""
        if model.recommender is not None or self.features is None:
            return True
        return any(all(f in table.columns for f in model.features) for table in self.features.tables.values())


def _route(kind: ModelKind) -> Any:
    endpoint = kind.endpoint

    async def answer(body: Any, request: Request) -> Response:
        started = time.perf_counter()
        state: ServingState = request.app.state.serving
        tenant = same_tenant(request, getattr(body, "tenant_id", None))
        try:
            served = endpoint.handle(body, RequestContext(state, tenant, kind.name))
        except NotServable as exc:
            raise ApiError(503, exc.code, exc.message, tenant.tenant_id) from None
        request_id = uuid.uuid4().hex
        seconds = time.perf_counter() - started
        state.metrics.observe(tenant.tenant_id, endpoint.path, served.version, seconds)
        state.plog.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "request_id": request_id,
                "tenant_id": tenant.tenant_id,
                "region": tenant.region,
                **served.log,
                "latency_ms": round(seconds * 1000, 3),
            }
        )
        return json_response({**served.body, "request_id": request_id})

    # FastAPI reads the body's model from the signature: the kind's request model, set here.
    answer.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=endpoint.request),
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        ]
    )
    answer.__name__ = f"post_{kind.name}"
    answer.__doc__ = (endpoint.handle.__doc__ or endpoint.summary).strip()
    return answer


def router(kinds: list[ModelKind]) -> APIRouter:
    """The kinds' routes."""
    r = APIRouter(tags=["predictions"])
    for kind in kinds:
        r.add_api_route(
            kind.endpoint.path,
            _route(kind),
            methods=["POST"],
            response_model=kind.endpoint.answer,
            summary=kind.endpoint.summary,
            responses={503: {"description": "no published features or no champion yet"}},
        )
    return r
