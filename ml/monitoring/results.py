"""The monitor's results in each warehouse: the ``monitoring`` table and ``monitoring_live_metrics``.

``monitoring`` has one row per tenant, day, check, kind and metric (value, threshold, drifted,
status, windows, report path); ``monitoring_live_metrics`` one row per batch of served
predictions (tenant, kind, source, model version, day, horizon) with each kind's live metric
columns (:attr:`ml.models.kinds.base.LiveMonitoring.columns`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.settings import Settings, get_settings
from ml.core.warehouse import WarehouseKeyError, connect, warehouse_lock
from ml.models.kinds import all_kinds

# metrics that count something (columns): their values and thresholds are whole numbers
COUNTS = frozenset({"drifted_columns"})


def figure(metric: str, value: float) -> str:
    """A check's value or threshold as people read it: a count (:data:`COUNTS`) whole, else to three decimals."""
    return f"{value:,.0f}" if metric in COUNTS else f"{value:.3f}"


def reading(metric: str, value: float, threshold: float, detail: str = "") -> str:
    """A judged check as the status table and the monitor's reasons say it: ``score=0.366 (threshold 0.150)``;
    a count names what it counts, ``drifted_columns=3: topic, device, hour (threshold 1)``."""
    counted = f": {detail}" if metric in COUNTS and detail else ""
    return f"{metric}={figure(metric, value)}{counted} (threshold {figure(metric, threshold)})"


@dataclass
class CheckResult:
    """One row of the ``monitoring`` table."""

    tenant_id: str
    check: str  # data_drift | feature_drift | prediction_drift | performance
    kind: str  # recommender | churn | events
    metric: str  # e.g. share_drifted_columns, column:dwell_seconds, score, live_hit_rate_at_10
    value: float | None
    threshold: float | None
    drifted: bool | None  # None: could not be judged (see status)
    status: str  # ok | insufficient_data | no_reference | error | skipped
    detail: str = ""
    reference_start: date | None = None
    reference_end: date | None = None
    current_start: date | None = None
    current_end: date | None = None
    model_version: str | None = None
    report_path: str | None = None


_MONITORING_DDL = """
create table if not exists monitoring (
    tenant_id varchar not null,
    checked_on date not null,
    checked_at timestamptz not null,
    "check" varchar not null,
    kind varchar not null,
    metric varchar not null,
    value double,
    threshold double,
    drifted boolean,
    status varchar not null,
    detail varchar,
    reference_start date,
    reference_end date,
    current_start date,
    current_end date,
    model_version varchar,
    report_path varchar,
    primary key (tenant_id, checked_on, "check", kind, metric)
)
"""
# the columns every live row has; each kind adds its own (LiveMonitoring.columns), null in other kinds' rows
LIVE_BASE = {
    "tenant_id": "varchar not null",
    "kind": "varchar not null",
    "source": "varchar not null",
    "model_version": "varchar not null",
    "as_of": "date not null",
    "horizon_days": "integer not null",
    "users_scored": "integer not null",
    "users_active": "integer not null",
    "users_hit": "integer not null",
}


def live_columns() -> dict[str, str]:
    """``monitoring_live_metrics``' columns: the common ones, every kind's metrics, ``computed_at``."""
    own = {c: t for k in all_kinds() for c, t in k.live.columns.items()}
    return {**LIVE_BASE, **own, "computed_at": "timestamptz not null"}


def _live_ddl() -> str:
    cols = ",\n    ".join(f"{c} {t}" for c, t in live_columns().items())
    key = "tenant_id, kind, source, model_version, as_of, horizon_days"
    return f"create table if not exists monitoring_live_metrics (\n    {cols},\n    primary key ({key})\n)"


def write(path: Any, results: list[CheckResult], live_rows: list[dict[str, Any]], today: date) -> None:
    """Replace the tenants' rows of ``today`` and upsert the live batches, in one transaction."""
    frame = pd.DataFrame([asdict(r) for r in results])
    with warehouse_lock(path):
        con = connect(path)
        try:
            cols = {
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_name = 'monitoring_live_metrics'"
                ).fetchall()
            }
            if cols and cols != set(live_columns()):  # made with other kinds: derived data, recomputed below
                con.execute("drop table monitoring_live_metrics")
            con.execute(_MONITORING_DDL)
            con.execute(_live_ddl())
            con.execute("begin")
            _replace_results(con, frame, today)
            if live_rows:
                live = pd.DataFrame(live_rows).assign(computed_at=pd.Timestamp.now(tz="UTC"))
                con.register("live", live)
                con.execute("insert or replace into monitoring_live_metrics by name select * from live")
                con.unregister("live")
            con.execute("commit")
        finally:
            con.close()


def _replace_results(con: Any, frame: pd.DataFrame, today: date) -> None:
    for tid in sorted(frame["tenant_id"].unique()) if not frame.empty else []:
        con.execute("delete from monitoring where tenant_id = ? and checked_on = ?", [tid, today])
    if frame.empty:
        return
    frame["checked_on"] = today
    frame["checked_at"] = pd.Timestamp.now(tz="UTC")
    frame["drifted"] = frame["drifted"].astype("boolean")
    con.register("results", frame)
    con.execute("""insert into monitoring select tenant_id, checked_on, checked_at, "check", kind, metric,
                   value, threshold, drifted, status, detail, reference_start, reference_end, current_start,
                   current_end, model_version, report_path from results""")
    con.unregister("results")


def summarise(rows: list[CheckResult]) -> dict:
    """One tenant's verdict: drifted checks (the headline rows, not single columns) and problems."""
    headline = [r for r in rows if not r.metric.startswith("column:")]
    drifted = [r for r in headline if r.drifted]
    names = {k.name for k in all_kinds()}
    kinds = sorted({r.kind for r in drifted if r.kind in names} or (names if drifted else set()))
    every = [asdict(x) for x in rows] if drifted else []  # _reports' rows, converted once
    return {
        "drifted": bool(drifted),
        "kinds": kinds,
        "checks": [f"{r.check}/{r.kind}:{r.metric}" for r in drifted],
        "reasons": [
            f"{r.check}/{r.kind} {reading(r.metric, r.value, r.threshold, r.detail)}"
            + ("" if r.metric in COUNTS or not r.detail else f": {r.detail}")
            for r in drifted
            if r.value is not None and r.threshold is not None
        ],
        "problems": [f"{r.check} {r.kind} {r.metric}: {r.status}: {r.detail}" for r in rows if r.status in ("error",)],
        "insufficient": [
            f"{r.check} {r.kind}: {r.detail}" for r in headline if r.status in ("insufficient_data", "no_reference")
        ],
        # the reports that show its drifted checks (a feature check's per-entity ones too), not every report written
        "reports": sorted({p for r in drifted for p in _reports(asdict(r), every)}),
    }


def read_live_metrics(warehouse_keys: list[str], settings: Settings | None = None) -> pd.DataFrame:
    """The ``monitoring_live_metrics`` rows of these warehouses (empty where none were computed yet)."""
    import duckdb

    settings = settings or get_settings()
    frames = []
    for key in warehouse_keys:
        path = settings.stores.warehouse_file(key)
        if not path.exists():
            continue
        with warehouse_lock(path):
            con = connect(path, read_only=True)
            try:
                frames.append(con.execute("select * from monitoring_live_metrics").df())
            except duckdb.CatalogException:
                pass
            finally:
                con.close()
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latest_results(settings: Settings, tenant_id: str, warehouse_key: str) -> dict | None:
    """The ``drift`` part of the status contract, from the warehouse's ``monitoring`` table; None before the
    tenant's first check; ``{"error": why}`` when the warehouse does not open now (a writer holds it, a silo
    tenant's key does not answer)."""
    import duckdb

    path = settings.stores.warehouse_file(warehouse_key)
    if not path.exists():
        return None
    try:
        con = connect(path, read_only=True)
    except WarehouseKeyError as exc:  # a silo tenant's key problem (its row's health problems say it too)
        return {"error": f"its warehouse does not open: {exc}"}
    except duckdb.Error as exc:
        return {"error": f"its warehouse is busy ({type(exc).__name__}); try again when the features DAG is done"}
    try:
        rows = con.execute(
            """select checked_at, "check", kind, metric, value, threshold, drifted, status, detail, report_path
               from monitoring where tenant_id = ? and checked_on = (select max(checked_on) from monitoring where tenant_id = ?)
               order by metric like 'column:%', "check", kind, metric""",
            [tenant_id, tenant_id],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    if not rows:
        return None
    keys = ("checked_at", "check", "kind", "metric", "value", "threshold", "drifted", "status", "detail", "report_path")
    every = [dict(zip(keys, r, strict=True)) for r in rows]
    checks = [{**c, "reports": _reports(c, every)} for c in every if not c["metric"].startswith("column:")]
    if not checks:  # a day of column rows alone (never written so): nothing to judge the tenant by
        return None
    drift = {
        "last_checked_at": max(c["checked_at"] for c in checks).isoformat(),
        "drifted": any(c["drifted"] for c in checks),
        "checks": [{**c, "checked_at": c["checked_at"].isoformat()} for c in checks],
    }
    # the report to open first: a drifted check's, else any check's that was written
    written = (c["report_path"] for c in checks if c["report_path"] and Path(c["report_path"]).exists())
    return {**drift, "report_path": next(iter(drifted_reports(drift)), next(written, None))}


def _reports(check: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The Evidently reports that show a drifted check: its own and, for a feature check, each report of its
    drifted columns (a column judged over items or users has a report of its own, ``<kind>.items.html``:
    :func:`ml.monitoring.checks.entity_columns`); only files that exist (a check of per-entity columns alone
    writes no report of its own). Empty for a check that did not drift."""
    if not check["drifted"]:
        return []
    same = [r for r in rows if (r["check"], r["kind"]) == (check["check"], check["kind"]) and r is not check]
    paths = [check["report_path"], *(r["report_path"] for r in same if r["drifted"])]
    return [p for p in dict.fromkeys(paths) if p and Path(p).exists()]


def drifted_reports(drift: dict[str, Any]) -> list[str]:
    """The Evidently reports of a tenant's drifted checks (:func:`latest_results`' ``drift``), each once, a feature
    check's per-entity reports among them (:func:`_reports`), as the status table lists them below it."""
    return list(dict.fromkeys(p for c in drift.get("checks", []) if c.get("drifted") for p in c.get("reports", [])))
