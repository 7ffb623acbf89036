"""What one ``train`` DAG run does: its plan, the snapshots, each chunk of tenants, and its summary.

The DAG file only wires these together. A tenant whose features are unhealthy is skipped with the
reason; one tenant's failure is reported and the chunk goes on; the run fails at the end if any
tenant failed (``report``), after fairness and the summary were recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from ml.core.settings import Settings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import Warehouse, warehouse_jobs
from ml.data import snapshots
from ml.data.feature_checks import read_health
from ml.data.ingest.plan import chunk
from ml.models import kinds
from ml.models.fairness import fairness
from ml.models.train import train_global, train_tenant

log = logging.getLogger(__name__)


def plan_run(params: dict[str, Any], run_type: str, parallel_chunks: int) -> dict[str, list[dict[str, Any]]]:
    """The run's mapped work from its params and how it was triggered.

    ``warehouses`` to snapshot, ``globals`` (one job per kind and region, :func:`global_regions`;
    none when the run names tenants: a targeted retrain) and ``chunks`` of tenants (at least ``parallel_chunks`` when there are enough
    tenants). An empty ``kinds`` means every registered kind; an empty ``tenants`` every tenant.
    """
    kind_names = [kinds.get_kind(k).name for k in params.get("kinds") or kinds.kind_names()]
    tenants = TenantStore().select(params.get("tenants") or None)
    reason = params.get("reason") or {"asset_triggered": "features", "scheduled": "schedule"}.get(run_type, run_type)
    ids = [t.tenant_id for t in tenants]
    size = max(1, min(int(params.get("chunk_size") or 10), -(-len(ids) // parallel_chunks)))
    common = {"kinds": kind_names, "reason": reason, "force": bool(params.get("force"))}
    return {
        "warehouses": warehouse_jobs(tenants, named=bool(params.get("tenants"))),
        "globals": []
        if params.get("tenants")
        else [{"kind": k, "region": r, **common} for k in kind_names for r in global_regions(tenants)],
        "chunks": [{"tenants": c, **common} for c in chunk(ids, size)],
    }


def global_regions(tenants: list[Tenant]) -> list[str]:
    """The regions with a global model to train: those where one of these tenants shares its data
    (a region where none does has no global model; its tenants train models of their own)."""
    return sorted({t.region for t in tenants if t.feeds_global_model})


def snapshot_warehouse(
    wh: Warehouse, tenants: list[str] | None = None, settings: Settings | None = None
) -> dict[str, snapshots.Snapshot]:
    """Freeze the training marts of every kind (and the serving marts' drift reference) for these tenants."""
    return snapshots.export_warehouse(wh, kinds.training_marts(), kinds.serving_marts(), settings, tenants)


def unhealthy(settings: Settings, tenant_id: str) -> str | None:
    """Why a tenant is not trained (its features failed their checks), or None: the one health rule
    of the train DAG and ``tenantflow train``. A tenant whose features were never checked trains."""
    health = read_health(settings, tenant_id)
    if health is not None and not health.get("healthy", True):
        return "features unhealthy: " + "; ".join(health["health_problems"])
    return None


def train_chunk(
    tenant_ids: list[str], kind_names: list[str], reason: str, force: bool = False, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Each tenant of a chunk, each kind: train, log, register, gate. One failure never stops the others."""
    settings = settings or get_settings()
    out: list[dict[str, Any]] = []
    for tid in tenant_ids:
        why = unhealthy(settings, tid)
        if why:
            out.append({"tenant_id": tid, "skipped": why})
            continue
        for kind in kind_names:
            try:
                out.append(train_tenant(kind, tid, reason, settings, force=force))
            except Exception as exc:
                log.exception("tenant %s: training %s failed", tid, kind)
                out.append({"tenant_id": tid, "kind": kind, "error": f"{type(exc).__name__}: {exc}"})
    return out


def train_global_job(job: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """One global job of :func:`plan_run`: a kind's global model of one region."""
    return train_global(job["kind"], job["region"], job["reason"], settings, force=job["force"])


def summarise(results: list[dict[str, Any]], settings: Settings | None = None) -> dict[str, Any]:
    """Fairness across tenants, and what was promoted, kept as challenger, skipped and failed."""
    fair = fairness(results, settings)
    failed = {f"{r['kind']}.{r['tenant_id']}": r["error"] for r in results if r.get("error")}
    summary = {
        "promoted": sorted(f"{r['kind']}.{r['tenant_id']}" for r in results if r.get("promoted")),
        "challengers": sorted(
            f"{r['kind']}.{r['tenant_id']}" for r in results if r.get("version") and r.get("promoted") is False
        ),
        "skipped": {f"{r.get('kind', '*')}.{r['tenant_id']}": r["skipped"] for r in results if r.get("skipped")},
        "failed": failed,
        "fairness_flags": [f"{f['kind']}.{f['tenant_id']}" for f in fair if f["flagged"]],
    }
    return summary


def raise_for_failures(summary: dict[str, Any]) -> None:
    """Fail the run (after its summary was recorded) when a tenant failed; the message names each one."""
    if summary["failed"]:
        raise RuntimeError(f"training failed for {sorted(summary['failed'])}: {summary['failed']}")


def skip_if_nothing_ran(results: list[dict[str, Any]]) -> None:
    """Skip the train DAG's `report` when no tenant or global job reached training (its `plan` or
    every training task failed, or there are no tenants): no ``trained_models`` event, so no
    scoring run. A run whose tenants were all skipped still summarises them
    (:func:`skip_unless_a_version_was_registered` then skips the event).

    Raises:
        AirflowSkipException: ``results`` is empty.
    """
    if not results:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("no tenant reached training in this run: nothing to report or score")


def skip_unless_a_version_was_registered(summary: dict[str, Any]) -> None:
    """Skip the train DAG's `report` after its summary was logged when the run registered no version
    (every model was unchanged, not due or skipped): no ``trained_models`` event, so no ``score``
    run re-scores the same champions. A run that registered a challenger only still emits it.

    Raises:
        AirflowSkipException: nothing was promoted and no challenger was registered.
    """
    if summary["promoted"] or summary["challengers"]:
        return
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("summary: %s", summary)
    raise AirflowSkipException(
        f"no model version was registered (skipped: {summary['skipped']}): no trained_models event, nothing to score"
    )
