"""The feature store: dbt-duckdb builds per warehouse file, and feature discovery from dbt.

A *warehouse* is one DuckDB file: a region's pool (its ``pool`` tenants, ``tenant_id`` on every
row) or one ``silo`` tenant's own file. Each build runs the dbt project against one warehouse
with that warehouse's tenants passed as vars; only their lake paths are ever read.

DuckDB allows one writing process per file, so every build takes an exclusive lock on
``<file>.lock`` first: two builds of the same file queue, builds of different files run in
parallel.

Features are declared in the dbt yml (``meta.feature: true`` on a column, with entity, owner
and whether it may leave the tenant); :func:`feature_columns` reads them from the manifest, so
a new feature is a new model column plus yml, with no Python change.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ml.settings import Settings, get_settings
from ml.tenants import Tenant, TenantRegistry, validate_slug, warehouse_groups, warehouse_path

log = logging.getLogger(__name__)
_ENV_LOCK = threading.Lock()  # dbt reads env_var() from os.environ: one build per process at a time


@dataclass(frozen=True)
class Warehouse:
    """One DuckDB file and the tenants whose features it holds."""

    key: str  # "eu/pool" or "us/silo_initech"
    tenants: tuple[str, ...]
    sharing_tenants: tuple[str, ...]

    def path(self, settings: Settings) -> Path:
        return warehouse_path(settings, self.key)

    @classmethod
    def from_dict(cls, d: dict) -> Warehouse:
        """Back from ``dataclasses.asdict`` (how DAG tasks pass warehouses through XCom)."""
        return cls(d["key"], tuple(d["tenants"]), tuple(d["sharing_tenants"]))


def warehouses(tenants: list[Tenant]) -> list[Warehouse]:
    """The warehouse files of a set of tenants, in a stable order."""
    out = []
    for key, group in sorted(warehouse_groups(tenants).items()):
        out.append(
            Warehouse(
                key=key,
                tenants=tuple(t.tenant_id for t in group),
                sharing_tenants=tuple(t.tenant_id for t in group if t.share_data),
            )
        )
    return out


def duckdb_threads(builds_at_once: int) -> int:
    """DuckDB threads for each of ``builds_at_once`` warehouse builds sharing this machine.

    DuckDB starts one worker per core by default; two builds at once then run four busy
    threads on two cores, and their queries slow each other down more than they gain
    (10M events, two warehouses built at once, back to back: 109 s with 2 threads each, 96 s
    with 1).
    """
    return max(1, (os.cpu_count() or 1) // max(1, builds_at_once))


def lake_glob(settings: Settings, region: str, tenant_id: str) -> Path:
    return settings.lake / f"region={region}" / f"tenant={tenant_id}" / "date=*" / "part-0.parquet"


def dbt_vars(settings: Settings, wh: Warehouse, rebuild_from: str | None = None) -> dict:
    """dbt vars for one warehouse: only tenants that already have lake data are read."""
    region = wh.key.split("/", 1)[0]
    with_data = [t for t in wh.tenants if any(lake_glob(settings, region, t).parent.parent.glob("date=*/part-0.parquet"))]
    return {
        "lake_paths": [str(lake_glob(settings, region, t)) for t in with_data],
        "tenants": with_data,
        "sharing_tenants": [t for t in wh.sharing_tenants if t in with_data],
        "rebuild_from": rebuild_from,
    }


@contextmanager
def warehouse_lock(path: Path, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive, cross-process lock on one warehouse file (DuckDB's one-writer rule)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"warehouse {path} stayed locked for {timeout:.0f}s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_dbt(
    args: list[str], settings: Settings, wh: Warehouse | None = None, vars_: dict | None = None, threads: int | None = None,
) -> dict:
    """Run one dbt command in-process against a warehouse; return a summary of its results.

    ``threads``: DuckDB's worker threads (default: one per core; see :func:`duckdb_threads`).
    """
    from dbt.cli.main import dbtRunner

    target_dir = settings.dbt_target_dir / (wh.key.replace("/", "__") if wh else "_parse")
    (wh.path(settings) if wh else settings.warehouse).parent.mkdir(parents=True, exist_ok=True)
    env = {
        "TENANTFLOW_WAREHOUSE_PATH": str(wh.path(settings)) if wh else str(settings.warehouse / "_parse.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TENANTFLOW_DUCKDB_THREADS": str(threads or duckdb_threads(1)),
    }
    cli = [
        *args,
        "--project-dir", str(settings.dbt_project_dir),
        "--profiles-dir", str(settings.dbt_project_dir),
        "--log-path", str(target_dir / "logs"),
        "--target-path", str(target_dir),
    ]  # fmt: skip
    if vars_ is not None:
        cli += ["--vars", json.dumps(vars_)]
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            res = dbtRunner().invoke(cli)
        finally:
            _release_duckdb()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    nodes = []
    if res.result is not None and hasattr(res.result, "results"):
        for r in res.result.results:
            nodes.append(
                {
                    "node": r.node.unique_id,
                    "status": str(r.status),
                    "seconds": round(float(r.execution_time or 0), 3),
                    "message": r.message,
                    "failures": r.failures,
                }
            )
    if res.exception is not None:
        raise RuntimeError(f"dbt {' '.join(args)} failed for warehouse {wh.key if wh else '-'}: {res.exception}")
    return {"success": bool(res.success), "nodes": nodes, "target_dir": str(target_dir)}


def _release_duckdb() -> None:
    """Close the DuckDB instance dbt-duckdb keeps open in-process after a run.

    Otherwise the warehouse file stays open (and unwritable by other processes) for as long
    as this process lives. dbt-duckdb has no public call for it; this is what its own
    ``open()`` does when it replaces an environment.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        try:
            env.close()
        except Exception:  # noqa: BLE001 — best effort; the process may be ending anyway
            log.debug("ignoring error while closing dbt-duckdb's environment", exc_info=True)


def build_warehouse(
    wh: Warehouse, settings: Settings | None = None, rebuild_from: str | None = None, threads: int | None = None,
) -> dict:
    """``dbt build`` (models and their tests) for one warehouse file, under its lock."""
    settings = settings or get_settings()
    v = dbt_vars(settings, wh, rebuild_from)
    if not v["tenants"]:
        log.warning("warehouse %s: no tenant has lake data yet; nothing to build", wh.key)
        return {"warehouse": wh.key, "success": True, "skipped": True, "nodes": []}
    path = wh.path(settings)
    started = time.perf_counter()
    with warehouse_lock(path):
        result = run_dbt(["build"], settings, wh, v, threads)
    result.update(warehouse=wh.key, tenants=v["tenants"], seconds=round(time.perf_counter() - started, 2))
    failed = [n for n in result["nodes"] if n["status"] not in ("success", "pass", "warn")]
    result["failed_nodes"] = failed
    if failed:
        log.error("warehouse %s: %d dbt nodes failed: %s", wh.key, len(failed),
                  "; ".join(f"{n['node']}: {n['message']}" for n in failed))
    return result


def build_manifest(settings: Settings | None = None) -> Path:
    """``dbt parse``: the manifest Airflow renders from and training reads features from."""
    settings = settings or get_settings()
    run_dbt(["parse"], settings)
    return settings.dbt_target_dir / "_parse" / "manifest.json"


def feature_columns(manifest: dict, model: str) -> list[dict]:
    """Columns of a dbt model declared as features (``meta.feature: true``), in yml order."""
    node = manifest["nodes"].get(f"model.tenantflow.{model}")
    if node is None:
        raise KeyError(f"dbt model {model!r} is not in the manifest; run `dbt parse` (tenantflow features parse).")
    out = []
    for name, col in node["columns"].items():
        meta = {**col.get("meta", {}), **col.get("config", {}).get("meta", {})}
        if meta.get("feature"):
            out.append({"name": name, "description": col.get("description", ""), **meta})
    return out


def tenants_for(settings: Settings | None, tenant_ids: list[str] | None = None) -> list[Tenant]:
    """Registered tenants (all, or the named ones, validated)."""
    registry = TenantRegistry(settings or get_settings())
    if tenant_ids:
        return [registry.get(validate_slug(t)) for t in tenant_ids]
    return registry.list()


def health_path(settings: Settings, tenant_id: str) -> Path:
    return settings.reports / "health" / f"tenant={validate_slug(tenant_id)}.json"


def read_health(settings: Settings, tenant_id: str) -> dict | None:
    try:
        return json.loads(health_path(settings, tenant_id).read_text())
    except FileNotFoundError:
        return None


def check_warehouse_features(
    wh: Warehouse, tenants: list[str], settings: Settings, build: dict, threads: int | None = None,
) -> dict[str, dict]:
    """GX checks on each tenant's marts (read-only); writes and returns each tenant's health."""
    from ml import quality

    health: dict[str, dict] = {}
    failed_models = {n["node"].split(".")[-1] for n in build.get("failed_nodes", []) if n["node"].startswith("model.")}
    con = _read_only(wh, settings, threads)
    try:
        for tid in wh.tenants:
            if tid not in tenants:
                h = {"healthy": False, "health_problems": ["no lake data yet: run the ingest DAG"], "feature_rows": {}}
            else:
                frames = {
                    m: con.execute(f"select * from {m} where tenant_id = ?", [tid]).df()
                    for m in ("user_features", "item_features")
                }
                h = quality.check_features(frames, tid, settings.reports / "gx" / "features")
                h["health_problems"] += [f"dbt model {m} failed to build" for m in sorted(failed_models)]
                h["healthy"] = not h["health_problems"]
            h.update(tenant_id=tid, warehouse=wh.key, checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            path = health_path(settings, tid)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(h, indent=1))
            os.replace(tmp, path)
            health[tid] = h
    finally:
        con.close()
    return health


def build_and_check_warehouse(
    wh: Warehouse, settings: Settings | None = None, rebuild_from: str | None = None, threads: int | None = None,
) -> dict:
    """Build one warehouse's marts and check them per tenant (the features DAG's mapped task).

    ``threads``: DuckDB threads for the build, the checks and the publish (see :func:`duckdb_threads`).
    """
    settings = settings or get_settings()
    threads = threads or duckdb_threads(1)
    result = build_warehouse(wh, settings, rebuild_from, threads)
    if result.get("skipped"):
        result["health"] = {}
        return result
    with warehouse_lock(wh.path(settings)):
        result["health"] = check_warehouse_features(wh, result["tenants"], settings, result, threads)
        result["published"] = publish_online(wh, [t for t, h in result["health"].items() if h["healthy"]], settings, threads)
    return result


def _read_only(wh: Warehouse, settings: Settings, threads: int | None):
    """A read-only connection to a warehouse file (checks and publishing, under its lock)."""
    import duckdb

    return duckdb.connect(str(wh.path(settings)), read_only=True, config={"threads": threads or duckdb_threads(1)})


def publish_online(wh: Warehouse, tenants: list[str], settings: Settings, threads: int | None = None) -> dict[str, str]:
    """Publish the healthy tenants' serving marts for the API (call under the warehouse lock).

    An unhealthy tenant is not published: the API keeps serving its last good snapshot.
    """
    from ml.publish import publish_tenant
    from ml.tenants import TenantRegistry

    registry = TenantRegistry(settings)
    out = {}
    con = _read_only(wh, settings, threads)
    try:
        for tid in tenants:
            out[tid] = publish_tenant(con, settings, registry.get(tid).region, tid)["snapshot_id"]
    finally:
        con.close()
    return out
