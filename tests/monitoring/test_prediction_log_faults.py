"""A tenant's prediction log that does not open is that tenant's monitoring error, not the run's:
the other tenants are monitored, every warehouse's task ends, and the tenant's row in its own
``monitoring`` table says which file failed and what to do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ml.core import prediction_log, sealed_files
from ml.core.tenants import TenantStore
from ml.core.warehouse import Warehouse
from ml.core.warehouse import connect as warehouse_connect
from ml.monitoring import run
from ml.serving.prediction_log import PredictionLog
from tests.world import END


def _log_files(settings) -> set:
    return {p for t in TenantStore(settings).list() for p in prediction_log.files(settings, t.region, t.tenant_id)}


@pytest.fixture
def logged(served_world):
    """Every tenant's answers after the features' cutoff, written by the API's prediction log (a silo
    tenant's sealed); (settings, {tenant: its new files}). Every file added is removed after."""
    settings, _ = served_world
    before = _log_files(settings)
    api_log = PredictionLog(settings, interval=3600)  # the API's writer, flushed when closed
    at = f"{END + timedelta(days=3)}T09:00:00+00:00"
    for t in TenantStore(settings).list():
        for user in ("u000001", "u000002"):
            api_log.append(
                {"at": at, "tenant_id": t.tenant_id, "region": t.region, "endpoint": "recommendations"}
                | {"user_id": user, "items": ["i000001"], "model_version": "1", "arm": "champion"}
            )
    api_log.close()
    new = _log_files(settings) - before
    yield settings, {p.parent.parent.name.removeprefix("tenant="): p for p in new}
    for path in _log_files(settings) - before:
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()


def test_a_prediction_log_that_does_not_open_is_its_tenants_error_not_the_runs(logged):
    settings, files = logged
    sealed = files["initech"]  # the silo tenant's
    assert sealed_files.is_sealed(sealed) and not sealed_files.is_sealed(files["globex"])
    sealed.write_bytes(sealed.read_bytes()[:-40])  # cut short: a failed copy, a full disk
    # listed, and gone when opened (as a file an erasure removes while the monitor lists the log)
    gone = files["globex"].with_name("part-000000-gone.jsonl")
    gone.symlink_to(gone.with_name("nowhere.jsonl"))
    results = {}
    for job in run.plan(None, settings):  # the monitor DAG's mapped tasks, as check_warehouse runs each
        results |= run.monitor_warehouse(Warehouse.from_dict(job), settings, tenants=job["only"])["tenants"]
    assert set(results) == {"acme", "globex", "initech"}
    # acme is judged as ever: no problem, its reports written (its summary names only a drifted check's)
    acme = TenantStore(settings).get("acme")
    written = list(settings.stores.monitoring_reports.tenant_dir(acme.region, "acme").rglob("*.html"))
    assert not results["acme"]["problems"] and written, results["acme"]
    [globex] = results["globex"]["problems"]
    assert str(gone) in globex and "FileNotFoundError" in globex
    initech = TenantStore(settings).get("initech")
    con = warehouse_connect(settings.stores.warehouse_file(initech.warehouse_key), read_only=True)
    try:
        rows = con.execute(
            "select status, detail from monitoring where tenant_id = 'initech' "
            "and checked_at = (select max(checked_at) from monitoring where tenant_id = 'initech')"
        ).fetchall()
    finally:
        con.close()
    [(status, detail)] = rows
    assert status == "error" and [f"monitor all error: error: {detail}"] == results["initech"]["problems"]
    assert detail.startswith("its windows could not be read: TenantKeyError: tenant initech: ")
    assert f"{sealed} does not open" in detail and "cut short" in detail
    assert "restore the key it was sealed with, or put the file back from a backup, or delete it" in detail
