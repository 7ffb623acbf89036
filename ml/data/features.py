"""The feature store's build: dbt per warehouse, then Great Expectations per tenant, then publishing.

The features DAG maps :func:`build_and_check_warehouse` over the warehouse files; each build
holds the warehouse's lock (DuckDB's one-writer rule): two builds of one file queue, builds of
different files run in parallel.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ml.core import lineage
from ml.core.layout import silo_tenant_of
from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import Warehouse, connect, duckdb_threads, warehouse_lock, warehouses_holding
from ml.data import dbt_failures
from ml.data.dbt import dbt_vars, run_dbt
from ml.data.feature_checks import CHECKED_MARTS, check_features, write_health
from ml.data.ingest.run import seal_lake
from ml.data.publish import OnlineMart, publish_tenant

log = logging.getLogger(__name__)

# what dbt writes per node it runs in the target folder: a build that ran removes what it did not write
DBT_RUN_FOLDERS = ("compiled", "run")
# models that aggregate over tenants (``sharing_tenants``), and the ones built from them: rebuilt without a held-back
# tenant's rows, in this folder of the warehouse's dbt target
CROSS_TENANT_TAG, CROSS_TENANT_RUN = "cross_tenant", "cross_tenant"
CROSS_TENANT = f"tag:{CROSS_TENANT_TAG}+"
# the tables and views of the warehouse file a connection opened (a silo's is attached, then used)
BUILT_TABLES = "select table_name from information_schema.tables where table_catalog = current_database()"


def build_warehouse(
    wh: Warehouse,
    settings: Settings | None = None,
    rebuild_from: str | None = None,
    threads: int | None = None,
) -> dict:
    """``dbt build`` of one warehouse file's models, then ``dbt test`` of their data tests, under its lock.

    Two runs, so that a data test fails without stopping a model: in one ``dbt build`` a failed test skips every
    model below the one it tests, for every tenant of the file, though its rows name one (a pool's tenants share
    each model). Here every model is built (a unit test, a test of the SQL, still skips its model), then every
    data test runs, and :func:`check_warehouse_features` holds back the tenants its failing rows name. The tests
    run only when every model built: a model that failed holds back every tenant anyway, and its tests would read
    an earlier build's table. dbt's ``run_results.json`` in the warehouse's target folder is the tests' run;
    the models' run is kept beside it as ``run_results_models.json``. The result's ``nodes`` are both runs';
    ``dbt_vars``, the vars they ran with; ``models_built``, whether the first run succeeded (the tests ran)."""
    settings = settings or get_settings()
    v = dbt_vars(settings, wh, rebuild_from)
    if not v["tenants"]:
        log.warning("warehouse %s: no tenant has lake data yet; nothing to build", wh.key)
        return {"warehouse": wh.key, "success": True, "skipped": True, "nodes": []}
    path = wh.path(settings)
    started = time.perf_counter()
    if silo := silo_tenant_of(path):
        seal_lake(settings, TenantStore(settings).get(silo))
    with warehouse_lock(path):
        shutil.rmtree(settings.stores.dbt_target(wh.key) / CROSS_TENANT_RUN, ignore_errors=True)  # an earlier build's
        written_from = time.time()
        result = run_dbt(["build", "--exclude-resource-type", "test"], settings, wh, v, threads)
        target = Path(result["target_dir"])
        if (target / "run_results.json").is_file():
            (target / "run_results.json").replace(target / "run_results_models.json")
        if models_built := result["success"]:
            tests = run_dbt(["test", "--resource-type", "test"], settings, wh, v, threads)
            result.update(success=tests["success"], nodes=result["nodes"] + tests["nodes"])
        else:
            log.error(
                "warehouse %s: dbt's data tests did not run, as a model, seed, snapshot or unit test failed", wh.key
            )
        if result["nodes"]:  # the project parsed and ran: what this build did not write is an earlier one's
            _remove_older(target, written_from)
    result.update(warehouse=wh.key, tenants=v["tenants"], seconds=round(time.perf_counter() - started, 2))
    result.update(dbt_vars=v, models_built=models_built)
    # an exposure has nothing to run: "no-op" (for anything else it is not a success)
    failed = [
        n
        for n in result["nodes"]
        if n["status"] not in ("success", "pass", "warn")
        and not (n["status"] == "no-op" and n["node"].startswith("exposure."))
    ]
    result["failed_nodes"] = failed
    if warned := [n for n in result["nodes"] if n["status"] == "warn"]:
        log.warning(
            "warehouse %s: dbt tests that warn (each explained in `tenantflow features docs`): %s",
            wh.key,
            "; ".join(f"{n['node'].split('.')[2]}: {n['failures']} rows" for n in warned),
        )
    if failed:  # (dbt's own count: the nodes that failed, and the ones skipped below them)
        broken = [n for n in failed if n["status"] != "skipped"]
        log.error(
            "warehouse %s: %d dbt node%s failed%s: %s",
            wh.key,
            len(broken),
            "" if len(broken) == 1 else "s",
            f", {len(failed) - len(broken)} skipped below them" if len(failed) > len(broken) else "",
            "; ".join(f"{n['node']}: {n['message']}" + (f" ({n['hint']})" if n["hint"] else "") for n in broken),
        )
    return result


def _remove_older(target: Path, than: float) -> None:
    """Remove the files of dbt's per-node folders (:data:`DBT_RUN_FOLDERS`) written before ``than`` (a
    ``time.time()``): dbt leaves a removed test's compiled query there, for a reader to take as current."""
    for folder in DBT_RUN_FOLDERS:
        for f in (target / folder).rglob("*"):
            if f.is_file() and f.stat().st_mtime < than:
                f.unlink()


def check_warehouse_features(
    wh: Warehouse,
    tenants: list[str],
    settings: Settings,
    build: dict,
    threads: int | None = None,
) -> dict[str, dict]:
    """GX checks on each tenant's marts (read-only); writes and returns each tenant's health."""
    health: dict[str, dict] = {}
    failed_models = dbt_failures.failed_models(build.get("failed_nodes", []))
    con = connect(wh.path(settings), read_only=True, threads=threads)
    try:
        failed_tests = dbt_failures.failed_tests(
            con, build.get("failed_nodes", []), [t for t in wh.tenants if t in tenants]
        )
        # a model that failed on the file's first build left no table: say so rather than read it
        built = {r[0] for r in con.execute(BUILT_TABLES).fetchall()}
        missing = [m for m in CHECKED_MARTS if m not in built]
        # each tenant's long feature window, within which every served user was last active
        windows = (
            dict(con.execute("select tenant_id, feature_window_days from int_tenant_windows").fetchall())
            if set(tenants) & set(wh.tenants) and "int_tenant_windows" in built
            else {}
        )
        for tid in wh.tenants:
            if tid not in tenants:
                h: dict[str, Any] = {
                    "healthy": False,
                    "health_problems": [
                        "no lake data yet: run the ingest DAG (or `tenantflow ingest --start <first day>`)"
                    ],
                    "feature_rows": {},
                }
            elif missing:
                h = {
                    "healthy": False,
                    "health_problems": [f"mart {m} was never built on this warehouse" for m in missing],
                    "feature_rows": {},
                }
            else:
                frames = {m: con.execute(f"select * from {m} where tenant_id = ?", [tid]).df() for m in CHECKED_MARTS}
                h = check_features(frames, tid, settings, int(windows.get(tid, 28)))
            if tid in tenants:
                h["health_problems"] = failed_models + failed_tests[tid] + h["health_problems"]
                h["healthy"] = not h["health_problems"]
            h.update(tenant_id=tid, warehouse=wh.key, checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            write_health(settings, tid, h)
            health[tid] = h
    finally:
        con.close()
    return health


def build_and_check_warehouse(
    wh: Warehouse,
    online_marts: dict[str, OnlineMart],
    settings: Settings | None = None,
    rebuild_from: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Build one warehouse's marts, check them per tenant, publish the healthy tenants' online marts.

    The features DAG's mapped task. ``online_marts``: what the API reads (the model kinds'
    :func:`ml.models.kinds.online_marts`); ``threads``: DuckDB threads for the build, the checks and
    the publish (see :func:`ml.core.warehouse.duckdb_threads`).
    """
    settings = settings or get_settings()
    threads = threads or duckdb_threads(1)
    result = build_warehouse(wh, settings, rebuild_from, threads)
    if result.get("skipped"):
        result["health"] = {}
        return result
    with warehouse_lock(wh.path(settings)):
        result["health"] = check_warehouse_features(wh, result["tenants"], settings, result, threads)
        healthy = [t for t, h in result["health"].items() if h["healthy"]]
        result["published"] = publish_online(wh, healthy, online_marts, settings, threads)
        result["cross_tenant"] = _rebuild_cross_tenant(wh, settings, result, threads)
    result["held_back"] = _held_back(wh, settings, result)
    _record_lineage(wh, settings, result)
    del result["dbt_vars"]  # (the lake's paths of every tenant: not for a task's XCom)
    return result


def _rebuild_cross_tenant(
    wh: Warehouse, settings: Settings, result: dict[str, Any], threads: int | None = None
) -> dict[str, Any] | None:
    """Rebuild the models that aggregate over the warehouse's sharing tenants (tag ``cross_tenant``:
    ``global_topic_popularity``) and every model built from them, without the tenants just held back, so that a
    tenant's failed data never reaches another tenant through an aggregate; call under the warehouse lock, after
    the checks and the publishing (nothing published reads them).

    ``dbt build --select tag:cross_tenant+`` (the models and their tests) with ``sharing_tenants`` less the
    held-back ones, in the target's ``cross_tenant/`` folder (its run results; the build's own folder, its partial
    parse and its ``run_results.json`` of the data tests, untouched). Returns ``None`` when no sharing tenant was
    held back or the models did not all build (the data tests did not run); else ``{"without": [tenant ids],
    "models": [names], "failed": ["<node>: <message>"]}``. A model that failed (the aggregates may still hold the
    held-back tenants' rows) or a failed test of them is logged as an error; nothing raised, no tenant's health
    changed."""
    v = result["dbt_vars"]
    held = [t for t in v["sharing_tenants"] if not result["health"][t]["healthy"]]
    if not held or not result["models_built"]:
        return None
    sharing, target = [t for t in v["sharing_tenants"] if t not in held], Path(result["target_dir"]) / CROSS_TENANT_RUN
    try:
        run = run_dbt(["build", "--select", CROSS_TENANT], settings, wh, v | {"sharing_tenants": sharing}, threads,
                      target_dir=target)  # fmt: skip
        nodes = run["nodes"]
    except Exception as exc:  # (a rebuild that cannot run: the build is done, its tenants published)
        log.exception("warehouse %s: the cross-tenant models could not be rebuilt", wh.key)
        nodes = [{"node": CROSS_TENANT, "status": "error", "message": f"{type(exc).__name__}: {exc}"}]
    models = sorted(n["node"].split(".")[-1] for n in nodes if n["node"].startswith("model."))
    failed = [f"{n['node']}: {n['message']}" for n in nodes if n["status"] not in ("success", "pass", "warn")]
    unbuilt = [f for f in failed if not f.startswith("test.")]
    if unbuilt:
        log.error("warehouse %s: cross-tenant models not rebuilt without held-back %s, whose rows they may still "
                  "hold: %s", wh.key, ", ".join(held), "; ".join(unbuilt))  # fmt: skip
    elif failed:
        log.error("warehouse %s: %s rebuilt without held-back %s; their tests failed: %s", wh.key, ", ".join(models),
                  ", ".join(held), "; ".join(failed))  # fmt: skip
    else:
        log.warning("warehouse %s: %s rebuilt without held-back %s", wh.key, ", ".join(models), ", ".join(held))
    return {"without": held, "models": models, "failed": failed}


def _held_back(wh: Warehouse, settings: Settings, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The built tenants that failed their checks: their problems and the snapshot the API still serves
    them (``publish.current``'s metadata, None: nothing published yet). Logged with the tenants published."""
    from ml.data.publish import PointerError, current

    def still_serving(t: str) -> dict[str, Any] | None:
        try:
            return current(settings, wh.region, t)
        except PointerError as exc:  # (the build is done: say so, never fail it here)
            log.warning("warehouse %s: tenant %s's published pointer cannot be read: %s", wh.key, t, exc)
            return None

    held = {
        t: {"health_problems": h["health_problems"], "serving": still_serving(t)}
        for t, h in result["health"].items()
        if not h["healthy"] and t in result["tenants"]
    }
    for t, h in held.items():
        log.warning(
            "warehouse %s: tenant %s held back (%s): %s", wh.key, t, still_served(h), "; ".join(h["health_problems"])
        )
    if held and result["published"]:
        log.warning("warehouse %s: published the others: %s", wh.key, ", ".join(sorted(result["published"])))
    return held


def still_served(held: dict[str, Any]) -> str:
    """What the API serves a held-back tenant (one of :func:`build_and_check_warehouse`'s ``held_back``)."""
    serving = held["serving"]
    if not serving:
        return "nothing published for it yet"
    return f"the API still serves snapshot {serving['snapshot_id']} (cutoff {serving['serving_cutoff']})"


def _record_lineage(wh: Warehouse, settings: Settings, result: dict[str, Any]) -> None:
    """The tenants' lake tables read; the dbt models built and the online features published."""
    stores, region, tenants = settings.stores, wh.region, result["tenants"]
    path = wh.path(settings)
    built = [
        n["node"].split(".")[-1] for n in result["nodes"] if n["node"].startswith("model.") and n["status"] == "success"
    ]
    lineage.record(
        inputs=[lineage.file_dataset(stores.lake.tenant_dir(region, t), "lake", region, [t]) for t in tenants],
        outputs=[
            *(lineage.table_dataset(path, m, region, tenants) for m in built),
            *(
                lineage.file_dataset(stores.published.tenant_dir(region, t), "published", region, [t], version=sid)
                for t, sid in result["published"].items()
            ),
        ],
    )


def publish_online(
    wh: Warehouse, tenants: list[str], marts: dict[str, OnlineMart], settings: Settings, threads: int | None = None
) -> dict[str, str]:
    """Publish these tenants' online marts for the API (call under the warehouse lock); their snapshot ids.

    An unhealthy tenant is not published: the API keeps serving its last good snapshot.
    """
    store = TenantStore(settings)
    out = {}
    con = connect(wh.path(settings), read_only=True, threads=threads)
    try:
        for tid in tenants:
            out[tid] = publish_tenant(con, settings, store.get(tid).region, tid, marts)["snapshot_id"]
    finally:
        con.close()
    return out


def plan_builds(
    params: dict[str, Any], asset_rebuild_from: list[str | None], builds_at_once: int, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The features DAG run's mapped work: one build per warehouse file of the named (or all)
    tenants, of every tenant in that file (:func:`ml.core.warehouse.warehouses_holding`).

    ``rebuild_from`` is the earliest of the run's param and the triggering lake events' dates (a
    backfill recomputes incremental activity from there); each build gets its share of the cores
    as DuckDB threads.
    """
    candidates = [d for d in [params.get("rebuild_from"), *asset_rebuild_from] if d]
    rebuild_from = min(candidates) if candidates else None
    store = TenantStore(settings)
    planned = warehouses_holding(store.select(params.get("tenants") or None), store.list())
    threads = duckdb_threads(min(builds_at_once, len(planned)))
    return [{**asdict(w), "rebuild_from": rebuild_from, "threads": threads} for w in planned]


def feature_event(results: list[dict[str, Any]], data_docs: str) -> dict[str, Any]:
    """What the ``feature_marts`` asset event says: healthy and unhealthy tenants, and the Data Docs."""
    health = {t: h for r in results if r for t, h in r.get("health", {}).items()}
    return {
        "healthy": sorted(t for t, h in health.items() if h["healthy"]),
        "unhealthy": sorted(t for t, h in health.items() if not h["healthy"]),
        "data_docs": data_docs,
    }
