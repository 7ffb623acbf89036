"""Monitoring one warehouse's tenants: load their champions, read their windows, check, record, link.

One tenant's failure becomes an ``error`` row for that tenant; the others carry on. Results go to
the warehouse's monitoring tables (:mod:`ml.monitoring.results`); each HTML report is logged on
the champion's MLflow run (``monitoring/<date>/``, tags ``monitoring.report.*``). Each tenant's
lineage is recorded for the monitor DAG's OpenLineage events (:mod:`ml.core.lineage`): the
champion versions judged, their snapshots (the reference), the warehouse relations and the
prediction log read (the current window, the live metrics); the monitoring tables and the
reports written.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ml.core import lineage
from ml.core.layout import DailyStore
from ml.core.prediction_log import served_log
from ml.core.settings import Settings, get_settings
from ml.core.tenant_parquet import TenantKeyError
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import Warehouse, connect, warehouse_jobs, warehouse_lock
from ml.data import snapshots
from ml.models import registry
from ml.models.champion import load_champion
from ml.models.kinds import kinds_of
from ml.monitoring import policy as policies
from ml.monitoring.checks import MonitoredChampion, check_tenant
from ml.monitoring.results import CheckResult, summarise, write
from ml.monitoring.windows import TenantWindows, read_windows, relations_read

log = logging.getLogger(__name__)


def champions(tenant: Tenant, settings: Settings) -> dict[str, MonitoredChampion]:
    """The tenant's champions with what the checks need: booster, features, snapshot, holdout metrics."""
    out = {}
    c = registry.client(settings)
    for kind in kinds_of(tenant):
        champ = load_champion(kind.name, tenant.tenant_id, settings)
        if champ is None:
            continue
        snap = None
        sid = champ.version.tags.get("snapshot_id")
        if sid and champ.version.tags.get("tenant_id") == tenant.tenant_id:
            try:
                snap = snapshots.load(settings, tenant.region, tenant.tenant_id, sid)
            except FileNotFoundError:
                snap = None
        if snap is None:  # a global-served tenant, or a pruned snapshot: its latest own snapshot
            snap = snapshots.latest(settings, tenant.region, tenant.tenant_id)
        metrics = dict(c.get_run(champ.run_id).data.metrics) if champ.run_id else {}
        out[kind.name] = MonitoredChampion(champ, snap, metrics)
    return out


def _reference_end(champs: dict[str, MonitoredChampion]) -> date | None:
    ends = [
        date.fromisoformat(c.snapshot.serving_cutoff)
        for c in champs.values()
        if c.snapshot is not None and c.snapshot.serving_cutoff
    ]
    return max(ends) if ends else None


def _read_all_windows(
    path: Path, wanted: list[Tenant], champs: dict[str, Any], policy: dict[str, Any], settings: Settings
) -> dict[str, TenantWindows | str]:
    """Every tenant's windows in one read-only pass under the warehouse lock (:func:`_read_tenant`)."""
    with warehouse_lock(path):
        con = connect(path, read_only=True)
        try:
            return {
                t.tenant_id: _read_tenant(con, path, t, champs[t.tenant_id], policy[t.tenant_id], settings)
                for t in wanted
            }
        finally:
            con.close()


def _read_tenant(
    con: Any, path: Path, t: Tenant, champs: dict[str, MonitoredChampion] | str, policy: Any, settings: Settings
) -> TenantWindows | str:
    """One tenant's windows, its inputs recorded (:func:`_record_inputs`); or why they could not be
    read: a relation of its warehouse, or its prediction log (a file that does not open: unreadable,
    or sealed and damaged or without its key), for its error row."""
    own = champs if isinstance(champs, dict) else {}
    try:
        log_ = served_log(settings, t.region, t.tenant_id)
        w = read_windows(con, t, _reference_end(own), policy, kinds_of(t), log_)
    except (duckdb.Error, TenantKeyError, pa.ArrowInvalid, OSError) as exc:
        return f"its windows could not be read: {type(exc).__name__}: {exc}"
    _record_inputs(path, t, relations_read(con, w, kinds_of(t)), own, settings)
    return w


def _record_inputs(
    path: Path, t: Tenant, relations: list[str], champs: dict[str, MonitoredChampion], settings: Settings
) -> None:
    """What a tenant's checks read: each champion version judged and its snapshot (the reference),
    the warehouse relations of the current window and the live metrics (:mod:`ml.core.lineage`;
    the prediction log records itself, :class:`ml.core.prediction_log.ServedLog`)."""
    region, ids = t.region, [t.tenant_id]
    read = [lineage.table_dataset(path, r, region, ids) for r in relations]
    for c in champs.values():
        champ = c.champion
        read.append(lineage.model_dataset(settings.mlflow_tracking_uri, champ.name, champ.number, region, ids))
        if c.snapshot is not None:
            read.append(snapshots.lineage_dataset(settings, region, t.tenant_id, c.snapshot))
    lineage.record(inputs=read)


def _record_outputs(
    path: Path, t: Tenant, rows: list[CheckResult], live: list[dict[str, Any]], settings: Settings, today: date
) -> None:
    """What the monitor wrote for a tenant: its rows of the monitoring tables, and its reports (the
    tenant's report folder, today's partition) where a check wrote one."""
    region, ids = t.region, [t.tenant_id]
    written = [lineage.table_dataset(path, "monitoring", region, ids)]
    if live:
        written.append(lineage.table_dataset(path, "monitoring_live_metrics", region, ids))
    if any(r.report_path and Path(r.report_path).exists() for r in rows):
        reports = settings.stores.monitoring_reports
        day = (reports.day_dir(region, t.tenant_id, today).name,)
        written.append(
            lineage.file_dataset(reports.tenant_dir(region, t.tenant_id), "reports", region, ids, partitions=day)
        )
    lineage.record(outputs=written)


def plan(tenant_ids: list[str] | None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The ``monitor`` DAG's mapped work: one job per warehouse file of the named tenants (or all).

    Raises:
        TenantError: a named tenant is unknown.
    """
    return warehouse_jobs(TenantStore(settings).select(tenant_ids or None), named=bool(tenant_ids))


def monitor_warehouse(
    wh: Warehouse, settings: Settings | None = None, tenants: list[str] | None = None, today: date | None = None
) -> dict[str, Any]:
    """Run every check for this warehouse's tenants; write the monitoring rows; link the reports.

    Returns ``{"warehouse", "checked_on", "tenants": {tenant: verdict}}`` (:func:`ml.monitoring.results.summarise`).
    """
    settings = settings or get_settings()
    today = today or datetime.now(UTC).date()
    store = TenantStore(settings)
    wanted = [store.get(t) for t in wh.tenants if tenants is None or t in tenants]
    path = wh.path(settings)
    if not path.exists():
        return {"warehouse": wh.key, "tenants": {}}
    champs: dict[str, dict[str, MonitoredChampion] | str] = {}
    for t in wanted:
        try:
            champs[t.tenant_id] = champions(t, settings)
        except Exception as exc:
            log.exception("tenant %s: cannot load champions", t.tenant_id)
            champs[t.tenant_id] = f"{type(exc).__name__}: {exc}"
    policy = {t.tenant_id: policies.for_tenant(t.tenant_id, settings) for t in wanted}
    windows = _read_all_windows(path, wanted, champs, policy, settings)
    results: list[CheckResult] = []
    live_rows: list[dict[str, Any]] = []
    for t in wanted:
        rows, live = _check_one(t, windows[t.tenant_id], champs[t.tenant_id], policy[t.tenant_id], settings, today)
        results += rows
        live_rows += live
    write(path, results, live_rows, today)
    for t in wanted:
        mine = [r for r in results if r.tenant_id == t.tenant_id]
        _record_outputs(path, t, mine, [r for r in live_rows if r["tenant_id"] == t.tenant_id], settings, today)
    return {
        "warehouse": wh.key,
        "checked_on": today.isoformat(),
        "tenants": {t.tenant_id: summarise([r for r in results if r.tenant_id == t.tenant_id]) for t in wanted},
    }


def _error_row(tenant_id: str, why: str) -> CheckResult:
    """A tenant's one row when it could not be monitored: ``why`` names what failed and what to do."""
    return CheckResult(tenant_id, "monitor", "all", "error", None, None, None, "error", why)


def _check_one(
    t: Tenant,
    w: TenantWindows | str,
    champs: dict[str, MonitoredChampion] | str,
    policy: Any,
    settings: Settings,
    today: date,
) -> tuple[list[CheckResult], list[dict[str, Any]]]:
    tid = t.tenant_id
    t0 = time.perf_counter()
    live: list[dict[str, Any]] = []
    if isinstance(w, str) or isinstance(champs, str):
        why = w if isinstance(w, str) else f"its champions could not be loaded: {champs}"
        log.error("tenant %s: not monitored: %s", tid, why)
        rows = [_error_row(tid, why)]
    else:
        try:
            live = w.live
            rows = check_tenant(w, champs, policy, settings, today, tuple(k.name for k in kinds_of(t)))
        except Exception as exc:
            log.exception("tenant %s: monitoring failed", tid)
            rows = [_error_row(tid, f"{type(exc).__name__}: {exc}")]
    _link_reports(rows, champs if isinstance(champs, dict) else {}, settings)
    log.info(
        "tenant %s: %d checks in %.2fs, drifted: %s",
        tid,
        len(rows),
        time.perf_counter() - t0,
        sorted({f"{r.check}/{r.kind}" for r in rows if r.drifted and not r.metric.startswith("column:")}),
    )
    return rows, live


def _link_reports(rows: list[CheckResult], champs: dict[str, MonitoredChampion], settings: Settings) -> None:
    """Log each report on the champion's MLflow run (under ``monitoring/<date>/``) and tag the run."""
    c = registry.client(settings)
    by_kind: dict[str, set[str]] = {}  # a kind's report, and its item- and user-level columns' beside it
    for r in rows:
        if r.report_path:
            by_kind.setdefault(r.kind, set()).add(r.report_path)
    for kind_name, champ in champs.items():
        run_id = champ.champion.run_id
        if not run_id:
            continue
        for path in sorted(by_kind.get(kind_name, set()) | by_kind.get("events", set())):
            p = Path(str(path))
            if p.exists():
                try:
                    c.log_artifact(
                        run_id, str(p), artifact_path=f"monitoring/{DailyStore.day_of(p.parent).isoformat()}"
                    )
                    c.set_tag(run_id, f"monitoring.report.{p.stem}", str(p))
                except Exception:
                    log.exception("could not log %s on run %s", p, run_id)
