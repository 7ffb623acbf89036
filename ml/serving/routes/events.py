"""``POST /v1/events``: the webhook. Acknowledged only once the events are durably in ``landing/``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ml.serving.auth import same_tenant, suspended
from ml.serving.errors import ApiError, json_response
from ml.serving.schemas import EventBatch, EventsAnswer
from ml.serving.state import ServingState
from ml.serving.webhook import EventConflict, QuotaExceeded, TenantKeyUnavailable

router = APIRouter(tags=["events"])

ERRORS = {
    409: {"description": "an event id was accepted before with a different body"},
    403: {"description": "the tenant is suspended (its quota_events_per_day is 0)"},
    413: {"description": "body too large"},
    429: {"description": "rate limit or daily quota"},
    503: {"description": "a silo tenant's key is not available (nothing written)"},
}


@router.post("/v1/events", response_model=EventsAnswer, responses=ERRORS)  # type: ignore[arg-type]
async def post_events(batch: EventBatch, request: Request) -> Response:
    """Acknowledged only once the events are durably in `landing/` (fsync, atomic rename)."""
    started = time.perf_counter()
    state: ServingState = request.app.state.serving
    tenant = request.state.tenant
    if refused := suspended(tenant, "quota_events_per_day"):
        raise refused
    if len(batch.events) > state.config.max_events:
        raise ApiError(
            413,
            "too_many_events",
            f"{len(batch.events):,} events in one request; send at most {state.config.max_events:,}",
            tenant.tenant_id,
        )
    rows = []
    for e in batch.events:
        same_tenant(request, e.tenant_id)
        row = e.model_dump()
        row["tenant_id"] = tenant.tenant_id
        row["event_at"] = e.event_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        rows.append(row)
    fut = state.sink.submit(
        tenant.tenant_id, tenant.region, tenant.quota_events_per_day, rows, tenant.isolation == "silo"
    )
    try:
        results = await asyncio.wrap_future(fut)
    except EventConflict as exc:
        raise ApiError(
            409,
            "event_id_conflict",
            f"tenant {tenant.tenant_id}: event ids {exc.event_ids[:10]} were accepted "
            "before with a different body; an event id names one event forever. "
            "Nothing of this request was written",
            tenant.tenant_id,
        ) from None
    except TenantKeyUnavailable as exc:
        raise ApiError(
            503,
            "tenant_key_unavailable",
            f"tenant {tenant.tenant_id}: its events are kept sealed with its key, which is not available "
            "now; nothing of this request was written: retry later (the operator restores the key)",
            tenant.tenant_id,
        ) from exc
    except QuotaExceeded as exc:
        raise ApiError(
            429,
            "daily_event_quota",
            f"tenant {tenant.tenant_id}: {exc}; nothing of this request was written",
            tenant.tenant_id,
            retry_after=exc.retry_after,
        ) from None
    replayed = sum(r["replayed"] for r in results)
    state.metrics.events.labels(tenant.tenant_id, "false").inc(len(results) - replayed)
    state.metrics.events.labels(tenant.tenant_id, "true").inc(replayed)
    state.metrics.observe(tenant.tenant_id, "/v1/events", "-", time.perf_counter() - started)
    return json_response(
        {"tenant_id": tenant.tenant_id, "accepted": len(results) - replayed, "replayed": replayed, "events": results}
    )
