"""Erasure: a removed tenant purged from every store of the home (``tenantflow tenants remove --purge``).

A purge deletes, for one tenant id, everything the platform keeps of it:

- the tenant-partitioned folders (``region=R/tenant=T``) of landing, lake, quarantine, prediction
  log, monitoring reports, snapshots and published features; its GX results and health file (and
  the Data Docs, rendered again without them);
- its features: a silo's DuckDB file (and its dbt target), or its rows in every table of its
  region's pool warehouse, which is then rewritten into a fresh file (DuckDB keeps deleted rows'
  bytes in free blocks until they are reused; a copy holds only live rows);
- its rows in the serving API's webhook ledger (then ``VACUUM``, for the same reason) and the
  API's copies of its models;
- its registered models and their aliases (``<kind>.<tenant>``), and every MLflow run and logged
  model of the tenant, permanently (``mlflow gc``: artifacts and metadata);
- and when its data trained its region's global models, those are marked for retraining
  (:mod:`ml.core.erasure_marks`: the next train run retrains them with reason ``erasure``).

The tenant's keys were revoked and its id retired when it was removed
(:meth:`ml.core.tenants.TenantStore.remove`), so neither comes back. The audit log keeps the
entries naming the tenant (a company, not a person) and gains ``tenant_purge`` with what was
deleted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ml.core import audit, control_db, erasure_marks, tenant_keys
from ml.core.errors import TenantError
from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import delete_tenant, warehouse_lock
from ml.core.webhook_ledger import forget_tenant
from ml.models.kinds import kind_names
from ml.models.registry import global_owner, model_name


def purge_tenant(tenant_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Remove the tenant (if it is still registered) and delete its data, keys and models everywhere.

    Returns what was deleted: ``folders`` (paths), ``warehouse`` (rows per table, or the silo
    file), ``ledger_rows``, ``models`` (registered model names), ``runs`` and ``logged_models``.

    Raises:
        TenantError: the id was never registered here.
    """
    settings = settings or get_settings()
    store = TenantStore(settings)
    removed = store.removed(tenant_id)
    if removed is None:
        store.remove(tenant_id)  # raises for an unknown tenant
        removed = store.removed(tenant_id)
    assert removed is not None
    region, isolation = str(removed["region"]), str(removed["isolation"])
    report: dict[str, Any] = {"tenant_id": tenant_id, "region": region}
    report["folders"] = [str(p) for p in _tenant_folders(settings, region, tenant_id) if _rm(p)]
    report["warehouse"] = (
        _purge_silo(settings, region, tenant_id) if isolation == "silo" else _purge_pool(settings, region, tenant_id)
    )
    report["ledger_rows"] = forget_tenant(settings.stores.webhook_ledger, tenant_id)
    report |= _purge_models(settings, tenant_id)
    if settings.stores.data_docs_index.exists():  # its pages and suites go with its results (rendered anew)
        from ml.data.data_docs import build_data_docs

        build_data_docs(settings)
        report["data_docs"] = "rebuilt"
    with control_db.connect(settings) as con:
        con.execute("update removed_tenants set purged_at = datetime('now') where tenant_id = ?", (tenant_id,))
        if removed["share_data"] and isolation == "pool":  # its data trained its region's global models
            erasure_marks.mark(con, global_owner(region), kind_names(), f"tenant {tenant_id} purged")
            report["global_models_marked"] = global_owner(region)
        summary = {k: (len(v) if isinstance(v, list) else v) for k, v in report.items() if k != "tenant_id"}
        audit.append(con, "tenant_purge", tenant_id, detail=summary)
    return report


def _tenant_folders(settings: Settings, region: str, tenant_id: str) -> list[Path]:
    s = settings.stores
    daily = (s.landing, s.lake, s.quarantine, s.prediction_log, s.monitoring_reports)
    folders = [d.tenant_dir(region, tenant_id) for d in daily]
    folders += [s.snapshots.tenant_dir(region, tenant_id), s.published.tenant_dir(region, tenant_id)]
    folders += s.gx_tenant_dirs(tenant_id)
    folders += [s.health_file(tenant_id), s.dbt_target(f"{region}/silo_{tenant_id}"), s.tenant_lock(region, tenant_id)]
    folders += [s.serving_model_dir(model_name(kind, tenant_id)) for kind in kind_names()]
    return folders


def _rm(path: Path) -> bool:
    if path.is_dir():
        shutil.rmtree(path)
        return True
    if path.exists():
        path.unlink()
        return True
    return False


def _purge_silo(settings: Settings, region: str, tenant_id: str) -> dict[str, Any]:
    path = settings.stores.warehouse_file(f"{region}/silo_{tenant_id}")
    with warehouse_lock(path):
        leftovers = (path.with_name(path.name + ".wal"), path.with_name(path.stem + ".rewrite.duckdb"))
        deleted = [str(p) for p in (path, *leftovers) if _rm(p)]
    path.with_name(path.name + ".lock").unlink(missing_ok=True)
    return {"files": deleted, "key": tenant_keys.forget(settings, tenant_id)}


def _purge_pool(settings: Settings, region: str, tenant_id: str) -> dict[str, Any]:
    """Delete the tenant's rows from every table of its region's pool warehouse (the file is rewritten)."""
    path = settings.stores.warehouse_file(f"{region}/pool")
    if not path.exists():
        return {"rows": {}}
    with warehouse_lock(path):
        return {"rows": delete_tenant(path, tenant_id)}


def _purge_models(settings: Settings, tenant_id: str) -> dict[str, list[str]]:
    """Delete the tenant's registered models (versions and aliases with them), then its runs and
    logged models for good (``mlflow gc`` on the tracking store: metadata and artifacts)."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from ml.models import registry

    c = registry.client(settings)
    models = []
    for kind in kind_names():
        name = registry.model_name(kind, tenant_id)
        try:
            c.delete_registered_model(name)
            models.append(name)
        except MlflowException:
            pass  # it never had one
    experiments = [e.experiment_id for e in c.search_experiments()]
    found = c.search_runs(
        experiments, f"tags.tenant_id = '{tenant_id}'", run_view_type=ViewType.ALL, max_results=50_000
    )
    runs = [r.info.run_id for r in found]
    logged = [
        m.model_id
        for run_id in runs
        for m in c.search_logged_models(experiments, filter_string=f"source_run_id = '{run_id}'")
    ]
    for run_id in runs:
        c.delete_run(run_id)
    for model_id in logged:
        c.delete_logged_model(model_id)
    if runs:
        _mlflow_gc(settings, runs, logged)
    return {"models": models, "runs": runs, "logged_models": logged}


def _mlflow_gc(settings: Settings, runs: list[str], logged: list[str]) -> None:
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        raise TenantError(
            f"the tenant's runs are deleted in MLflow at {uri} but their artifacts stay until the server's "
            f"operator runs `mlflow gc --backend-store-uri <its database> --run-ids {','.join(runs)}`."
        )
    cmd = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri, "--tracking-uri", uri]
    cmd += ["--run-ids", ",".join(runs)] + (["--logged-model-ids", ",".join(logged)] if logged else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(
            f"`mlflow gc` could not delete the tenant's runs for good ({done.stderr.strip()[-1000:]}); they are "
            f"marked deleted: run `{' '.join(cmd[2:])}` again once fixed."
        )
