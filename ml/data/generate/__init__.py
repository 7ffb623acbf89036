"""A synthetic content SaaS: realistic, learnable, per-tenant product events.

Each tenant runs a content platform with its own catalogue (items with a topic, a quality and a
publish time) and users with latent topic tastes and activity levels. Users open sessions,
click items, view them for a dwell time, complete or skip them, sometimes like them, and
sometimes cancel their subscription (activity decays before they do). Users pick items mostly
from the topics they like, so a personalised ranker beats popularity; tenants differ in size,
activity and taste mix.

Everything is vectorised with NumPy and Arrow (one pass per tenant, no Python loop per event),
and the random stream of a tenant depends only on ``(seed, tenant_id)``: the same arguments give
the same bytes, and adding a tenant does not change the others.

Landing layout (what a tenant drops, one batch per tenant and day)::

    landing/region=<r>/tenant=<t>/date=<YYYY-MM-DD>/events-<n>.<csv|jsonl|parquet>

Landing contract columns (:mod:`ml.core.contract`): ``event_id, tenant_id, user_id, item_id, event_type, event_at,
session_id, dwell_seconds, topic, device``. The catalogue travels in the same stream as
``item_published`` events (``item_id``, ``topic``, ``event_at`` = publish time).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml.data.generate.config import GenerationConfig, TenantSpec
from ml.data.generate.drops import inject_row_faults, write_daily_drops
from ml.data.generate.simulate import simulate_tenant, tenant_rng


@dataclass
class GenerationResult:
    files: list[Path]
    events: int  # rows written (including injected faulty rows, excluding malformed lines)
    events_by_tenant: dict[str, int]


def generate(
    config: GenerationConfig,
    landing: Path,
    workers: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> GenerationResult:
    """Write every tenant's daily drops under ``landing``; return what was written.

    Tenants are generated in parallel processes (``workers``, default: one per core); each
    tenant's random stream depends only on ``(seed, tenant_id)``, so the bytes do not depend
    on how many workers ran. ``progress(tenant_id, events)`` is called as each tenant finishes.
    """
    workers = min(len(config.tenants), workers or os.cpu_count() or 1)
    done: dict[str, tuple[list[Path], int]] = {}
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # largest tenants first, so no worker starts a big one while the others sit idle at the end
        order = sorted(config.tenants, key=_expected_events, reverse=True)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            futures = {pool.submit(_generate_tenant, spec, config, landing): spec.tenant_id for spec in order}
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                if progress:
                    progress(futures[fut], done[futures[fut]][1])
    else:
        for spec in config.tenants:
            done[spec.tenant_id] = _generate_tenant(spec, config, landing)
            if progress:
                progress(spec.tenant_id, done[spec.tenant_id][1])
    files = [f for spec in config.tenants for f in done[spec.tenant_id][0]]
    by_tenant = {spec.tenant_id: done[spec.tenant_id][1] for spec in config.tenants}
    return GenerationResult(files=files, events=sum(by_tenant.values()), events_by_tenant=by_tenant)


def _expected_events(spec: TenantSpec) -> float:
    """A tenant's cost, roughly: users × activity × days of history, a JSONL row costing about
    1.4 times a CSV or Parquet row to generate and write (only to order the work)."""
    return spec.users * spec.activity * (spec.history_days or 10_000) * (1.4 if spec.fmt == "jsonl" else 1.0)


def _generate_tenant(spec: TenantSpec, config: GenerationConfig, landing: Path) -> tuple[list[Path], int]:
    """Simulate, corrupt (if asked) and write one tenant: the unit of parallel work."""
    table = simulate_tenant(spec, config)
    faults = next((f for f in config.faults if f.tenant_id == spec.tenant_id), None)
    rng = tenant_rng(config.seed, spec.tenant_id, stream=1)
    if faults is not None:
        table = inject_row_faults(table, faults, config, rng)
    return write_daily_drops(table, spec, config, landing, faults, rng)
