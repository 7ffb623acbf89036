"""How the ingest DAG splits its work: the interval of a run, and tenants in balanced chunks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ml.core.errors import TenantError
from ml.core.settings import Settings
from ml.core.tenants import Tenant, TenantStore
from ml.data.ingest.landing import landing_bytes


def resolve_interval(params: dict[str, Any], interval_start: object, interval_end: object) -> tuple[str, str]:
    """The landing dates ``[start, end)`` of a run: its params, else its data interval."""
    if params.get("start"):
        start = date.fromisoformat(params["start"])
        end = date.fromisoformat(params["end"]) if params.get("end") else start + timedelta(days=1)
    elif interval_start is not None and interval_end is not None:
        start, end = interval_start.date(), interval_end.date()  # type: ignore[attr-defined]
        if end <= start:
            end = start + timedelta(days=1)
    else:
        raise ValueError("this run has no data interval: trigger it with params start and end (dates, end exclusive).")
    if end <= start:
        raise ValueError(f"empty interval: start {start} must be before end {end}.")
    return start.isoformat(), end.isoformat()


def chunk(items: list[str], size: int, weights: dict[str, float] | None = None) -> list[list[str]]:
    """Split tenants into groups of at most ``size`` so a thousand tenants are not a thousand
    tiny tasks. With ``weights`` (e.g. landing bytes), the groups are balanced: each tenant,
    heaviest first, joins the lightest group with room, so parallel tasks finish together
    instead of one waiting on a group that happened to get the big tenants. Each group keeps
    the order of ``items``; the same input gives the same groups."""
    size = max(1, size)
    if not weights:
        return [items[i : i + size] for i in range(0, len(items), size)]
    n = -(-len(items) // size)
    groups: list[list[int]] = [[] for _ in range(n)]
    load = [0.0] * n
    for i in sorted(range(len(items)), key=lambda i: (-weights.get(items[i], 0), i)):
        g = min((g for g in range(n) if len(groups[g]) < size), key=lambda g: (load[g], g))
        groups[g].append(i)
        load[g] += weights.get(items[i], 0)
    return [[items[i] for i in sorted(g)] for g in groups]


def plan_chunks(
    settings: Settings, tenants: list[Tenant], start: date, end: date, chunk_size: int, parallel: int
) -> list[list[str]]:
    """The ingest DAG's mapped work: at most ``chunk_size`` tenants per chunk, at least
    ``parallel`` chunks (the tasks that run at once), balanced by the bytes each tenant landed
    in ``[start, end)``."""
    ids = [t.tenant_id for t in tenants]
    size = max(1, min(chunk_size, -(-len(ids) // max(1, parallel))))
    return chunk(ids, size, {t.tenant_id: landing_bytes(settings, t, start, end) for t in tenants})


def plan_run(
    settings: Settings, params: dict[str, Any], interval_start: object, interval_end: object, parallel: int
) -> list[dict[str, Any]]:
    """The ingest DAG run's mapped work: ``{"tenants", "start", "end", "current_spec"}`` per chunk (``current_spec``:
    the run's param, :func:`ml.data.ingest.run.ingest_tenants`).

    Raises:
        TenantError: ``params["tenants"]`` names an unregistered tenant.
    """
    start, end = resolve_interval(params, interval_start, interval_end)
    wanted = set(params.get("tenants") or [])
    registered = [t for t in TenantStore(settings).list() if not wanted or t.tenant_id in wanted]
    unknown = wanted - {t.tenant_id for t in registered}
    if unknown:
        raise TenantError(f"unknown tenants {sorted(unknown)}: `tenantflow tenants list` shows the registered ones.")
    chunks = plan_chunks(
        settings,
        registered,
        date.fromisoformat(start),
        date.fromisoformat(end),
        params.get("chunk_size") or 8,
        parallel,
    )
    current_spec = bool(params.get("current_spec"))
    return [{"tenants": c, "start": start, "end": end, "current_spec": current_spec} for c in chunks]


def lake_event(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the ``lake_events`` asset event says: the tenants whose lake changed, and from which date
    to rebuild (a rerun or backfill that rebuilt the same partitions names no tenant)."""
    dates = sorted({d for s in summaries for d in s["changed_dates"]})
    return {
        "tenants": [s["tenant_id"] for s in summaries if s["changed_dates"]],
        "rebuild_from": dates[0] if dates else None,
        "rows_landed": sum(s["landed"] for s in summaries),
    }
