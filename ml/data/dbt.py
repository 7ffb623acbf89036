"""dbt in-process: builds and parses against one warehouse, and the features declared in the models' yml.

Each build runs the dbt project against one warehouse file with that warehouse's tenants passed
as vars; only their lake paths are ever read. Features are declared in the dbt yml
(``meta.feature: true`` on a column, with entity, owner and whether it may leave the tenant);
:func:`feature_columns` reads them from the manifest, so a new feature is a new model column plus
yml, with no Python change.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from ml.core import tenant_parquet
from ml.core.contract import INTERACTION_EVENT_TYPES
from ml.core.errors import SetupError
from ml.core.layout import LAKE_FILE, silo_tenant_of
from ml.core.settings import Settings, get_settings
from ml.core.tenant_keys import silo_key
from ml.core.tenants import TenantStore
from ml.core.warehouse import (
    MEMORY_LIMIT_VARIABLE,
    Warehouse,
    catalog_name,
    connect,
    duckdb_memory_limit,
    duckdb_threads,
    extension_directory,
    out_of_memory_hint,
)

log = logging.getLogger(__name__)
_ENV_LOCK = threading.Lock()  # dbt reads env_var() from os.environ: one build per process at a time


class DbtError(SetupError):
    """dbt could not run a command at all (a project that does not parse, too little memory to start): the message
    is dbt's, with the warehouse and what to do where known. A node that fails is a result, not this."""


def dbt_vars(settings: Settings, wh: Warehouse, rebuild_from: str | None = None) -> dict[str, Any]:
    """dbt vars for one warehouse: only tenants that already have lake data are read.

    ``lake_key``: a silo warehouse's, the name of its tenant's Parquet key (its lake is encrypted);
    ``repeat_tenants``: those whose seen-items policy allows repeats (their history candidates
    may be items the user already consumed); ``label_windows``, ``churn_windows``,
    ``feature_windows``: tenant -> the recommender label window, churn window or long feature
    window its registry entry sets, in days (the others follow their activity cadence: dbt model
    ``int_tenant_windows``); ``min_ratings``: tenant -> its ``min_rating`` (the lowest positive
    rating: ``stg_lake__events.is_interaction``), for the tenants that set one; ``interaction_types``:
    tenant -> the event types that are its interactions (``stg_lake__events.is_consumed``), for the
    tenants that declare their own (the others: ``interaction_event_types``, the platform's).
    """
    lake = settings.stores.lake
    with_data = [t for t in wh.tenants if lake.files(wh.region, t, LAKE_FILE)]
    registered = {t.tenant_id: t for t in TenantStore(settings).list()}
    silo = silo_tenant_of(wh.path(settings))
    return {
        "lake_paths": [lake.glob(wh.region, t, LAKE_FILE) for t in with_data],
        "lake_key": tenant_parquet.key_name(silo) if silo else None,
        "tenants": with_data,
        "sharing_tenants": [t for t in wh.sharing_tenants if t in with_data],
        "rebuild_from": rebuild_from,
        "interaction_event_types": list(INTERACTION_EVENT_TYPES),
        "repeat_tenants": [t for t in with_data if t in registered and registered[t].seen_items == "allow"],
        "label_windows": _registry_values(registered, with_data, "label_window_days"),
        "churn_windows": _registry_values(registered, with_data, "churn_window_days"),
        "feature_windows": _registry_values(registered, with_data, "feature_window_days"),
        "min_ratings": {t: r.min_rating for t in with_data if (r := registered.get(t)) and r.min_rating is not None},
        "interaction_types": {
            t: list(r.interaction_types) for t in with_data if (r := registered.get(t)) and r.interaction_types
        },
    }


def _registry_values(registered: dict[str, Any], tenants: list[str], field: str) -> dict[str, int]:
    """tenant -> the registry's value of ``field``, for the tenants that set it."""
    return {t: getattr(registered[t], field) for t in tenants if t in registered and getattr(registered[t], field)}


def _encryption_env(warehouse: Path, settings: Settings) -> dict[str, str]:
    """For a silo tenant's warehouse: what the profile's ``encrypted`` target reads (the warehouse's
    key, and the Parquet key its lake is read with: :mod:`ml.data.dbt_plugin`). The file is
    created (or a file written before encryption encrypted) first, with the tenant's key."""
    from ml.data import dbt_plugin

    tenant = silo_tenant_of(warehouse)
    if tenant is None:
        return {}
    connect(warehouse).close()  # makes the key and the encrypted file (hold the warehouse lock)
    key = silo_key(settings, tenant, create=True) or ""
    return {
        "DBT_ENV_SECRET_TENANTFLOW_WAREHOUSE_KEY": key,
        "TENANTFLOW_WAREHOUSE_CATALOG": catalog_name(warehouse),
        "TENANTFLOW_DUCKDB_EXTENSIONS": extension_directory(),
        dbt_plugin.KEY_ENV: tenant_parquet.derived(key) if key else "",
        dbt_plugin.NAME_ENV: tenant_parquet.key_name(tenant),
    }


def run_dbt(
    args: list[str],
    settings: Settings,
    wh: Warehouse | None = None,
    vars_: dict | None = None,
    threads: int | None = None,
    target_dir: Path | None = None,
) -> dict:
    """Run one dbt command in-process against a warehouse; return a summary of its results.

    ``threads``: DuckDB's worker threads (default: one per core; see :func:`duckdb_threads`); its
    ``memory_limit`` is the same share of the machine's memory (:func:`duckdb_memory_limit`).
    ``target_dir``: dbt's target folder (default: the warehouse's, where its builds' manifest is).
    Each node's ``hint`` says what to do when it ran out of that memory (else ``""``).

    Raises:
        DbtError: dbt could not run the command (a project that does not parse; too little memory to start).
    """
    from dbt.cli.main import dbtRunner

    _require_project(settings)
    target_dir = target_dir or settings.stores.dbt_target(wh.key if wh else None)
    warehouse = wh.path(settings) if wh else settings.stores.parse_warehouse
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    threads = threads or duckdb_threads(1)
    env = {
        "TENANTFLOW_WAREHOUSE_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TENANTFLOW_DUCKDB_THREADS": str(threads),
        MEMORY_LIMIT_VARIABLE: duckdb_memory_limit(threads),
    } | _encryption_env(warehouse, settings)
    project = str(settings.dbt_project_dir)
    cli = [*args, "--project-dir", project, "--profiles-dir", project, "--log-path", str(target_dir / "logs")]
    cli += ["--target-path", str(target_dir)]
    if sys.stdout is None or not sys.stdout.isatty():  # a task log, a redirect: dbt's lines without colour codes
        cli.append("--no-use-colors")
    if vars_ is not None:
        cli += ["--vars", json.dumps(vars_)]
    if "DBT_ENV_SECRET_TENANTFLOW_WAREHOUSE_KEY" in env:
        cli += ["--target", "encrypted"]
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            res = dbtRunner().invoke(cli)
        finally:
            _release_dbt()
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
                    "node": (node_id := r.node.unique_id),
                    "status": str(r.status),
                    "seconds": round(float(r.execution_time or 0), 3),
                    "message": r.message,
                    "hint": out_of_memory_hint(r.message, env[MEMORY_LIMIT_VARIABLE]),  # "" but for DuckDB's OOM
                    "failures": r.failures,
                    # a failed data test's query, whose rows name the tenants it failed for (ml.data.features)
                    "sql": getattr(r.node, "compiled_code", None) if failed_data_test(node_id, str(r.status)) else None,
                    "compiled_path": getattr(r.node, "compiled_path", None),  # the query dbt ran, on disk
                }
            )
    if res.exception is not None:
        hint = out_of_memory_hint(str(res.exception), env[MEMORY_LIMIT_VARIABLE])
        raise DbtError(
            f"dbt {' '.join(args)} failed for warehouse {wh.key if wh else '-'}: {res.exception}"
            + (f"\n{hint}" if hint else "")
        )
    return {"success": bool(res.success), "nodes": nodes, "target_dir": str(target_dir)}


def _require_project(settings: Settings) -> None:
    """Raise :class:`SetupError` naming the setting when the dbt project folder holds no ``dbt_project.yml``."""
    if not (settings.dbt_project_dir / "dbt_project.yml").is_file():
        raise SetupError(
            f"no dbt project at {settings.dbt_project_dir} (no dbt_project.yml): set TENANTFLOW_DBT_PROJECT_DIR to a "
            "copy of the repository's dbt_project/ folder, or unset it"
        )


def failed_data_test(node: str, status: str) -> bool:
    """Whether a build's node (its unique id) is a data test (not a unit test) that failed or could not run."""
    return node.startswith("test.") and status in ("fail", "error")


def generate_docs(settings: Settings, wh: Warehouse) -> Path:
    """``dbt docs generate --static`` for one warehouse file: the project's lineage from the lake's
    sources to the exposures, and the catalog of the tables as built in that file, in one page
    (dbt inlines its scripts, so it opens offline, from disk or served).

    Returns the page, ``static_index.html`` under ``reports/dbt-docs/<warehouse>/``.

    Raises:
        DbtError: dbt failed (the message names the warehouse).
    """
    from ml.core.warehouse import warehouse_lock

    target = settings.stores.dbt_docs(wh.key)
    with warehouse_lock(wh.path(settings)):  # the catalog reads the file: not beside a build's writes
        res = run_dbt(["docs", "generate", "--static"], settings, wh, dbt_vars(settings, wh), target_dir=target)
    if not res["success"]:
        raise DbtError(f"dbt docs generate failed for warehouse {wh.key}; see {target / 'logs'}")
    return target / "static_index.html"


def _release_dbt() -> None:
    """Close the DuckDB instance dbt-duckdb keeps open in-process after a run, and drop dbt's adapters.

    Otherwise the warehouse file stays open (and unwritable by other processes) for as long
    as this process lives. dbt-duckdb has no public call for it; this is what its own
    ``open()`` does when it replaces an environment. Each adapter holds a lock from a "spawn"
    multiprocessing context (a named semaphore the resource tracker watches): kept until the process
    ends, a process that ends without finalizers (an Airflow task's) leaves the tracker warning of
    "leaked semaphore objects" on stderr, an ERROR line in a successful task's log.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        from dbt.adapters.factory import reset_adapters
    except ImportError:
        return
    try:
        reset_adapters()
        gc.collect()  # the adapters sit in reference cycles: their locks are released (unlinked) now
    except Exception:  # never in place of dbt's own error, and the file is closed below regardless
        log.debug("ignoring error while dropping dbt's adapters", exc_info=True)
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        try:
            env.close()
        except Exception:
            log.debug("ignoring error while closing dbt-duckdb's environment", exc_info=True)


def build_manifest(settings: Settings | None = None) -> Path:
    """``dbt parse``: the manifest Airflow renders from and training reads features from."""
    settings = settings or get_settings()
    run_dbt(["parse"], settings)
    return settings.stores.dbt_target(None) / "manifest.json"


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


def manifest_path(settings: Settings, wh: Warehouse) -> Path:
    """The manifest of the dbt build that produced this warehouse's marts."""
    return settings.stores.dbt_target(wh.key) / "manifest.json"


# the folder holding the ``ml`` package, whose code the dbt Python models import (manifest_hash)
CODE_ROOT = Path(__file__).resolve().parents[2]
_ML_IMPORT = re.compile(r"^\s*(?:from|import)\s+(ml(?:\.\w+)+)", re.MULTILINE)


def manifest_hash(manifest: dict[str, Any]) -> str:
    """A stable hash of the code that made the marts, not of build timestamps: a model version records which
    feature code made its data (a new one makes the champions due: :mod:`ml.models.due`).

    dbt's checksum of a model is its SQL or Python file's (a yml's descriptions, tests and config do not count). A
    Python model's data also depends on the ``ml`` code it imports (``int_recommendation_candidates__history`` runs
    ``ml.models.recsys``), which dbt does not see: every ``.py`` file of each package it imports from counts too.
    """
    nodes = {k: v["checksum"]["checksum"] for k, v in manifest["nodes"].items() if k.startswith("model.")}
    python = [v.get("raw_code") or "" for v in manifest["nodes"].values() if v.get("language") == "python"]
    for module in sorted({m for code in python for m in _ML_IMPORT.findall(code)}):
        path = CODE_ROOT.joinpath(*module.split("."))
        folder = path if path.is_dir() else path.parent
        files = sorted(folder.glob("*.py"))
        nodes[f"code:{module}"] = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()
    return hashlib.sha256(json.dumps(nodes, sort_keys=True).encode()).hexdigest()[:16]
