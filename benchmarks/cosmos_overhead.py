"""astronomer-cosmos: one Airflow task per dbt node, against one `dbt build` task.

Renders the feature project as a cosmos DbtDag from a pre-built manifest
(LoadMode.DBT_MANIFEST, ExecutionMode.LOCAL, InvocationMode.DBT_RUNNER), runs it with
`dag.test()` (in-process, no scheduler), and compares its wall time with one `dbt build`
of the same warehouse. Airflow's per-task scheduling and process start-up come on top of
the cosmos figure in a real deployment (one per dbt node instead of one per warehouse).

    .venv/bin/python benchmarks/cosmos_overhead.py --tenants 3 --users 2000 --days 21
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import date, timedelta

from _common import fresh_home, register_fleet, report

from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import warehouses
from ml.data import dbt
from ml.data.generate import generate
from ml.data.generate.config import fleet_config
from ml.data.ingest.run import ingest_tenants
from ml.ops.airflow import airflow_env, prepare_airflow

END = date(2026, 11, 20)
COSMOS_DAG = """\"\"\"An Airflow DAG: the feature project rendered by cosmos (Airflow parses files naming airflow and dag).\"\"\"
import json, os
from datetime import datetime, timezone
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode

project = os.environ["COSMOS_PROJECT"]
dag = DbtDag(
    dag_id="cosmos_features",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    project_config=ProjectConfig(dbt_project_path=project, manifest_path=os.environ["COSMOS_MANIFEST"]),
    profile_config=ProfileConfig(profile_name="tenantflow", target_name="dev",
                                 profiles_yml_filepath=os.path.join(project, "profiles.yml")),
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    operator_args={"vars": json.loads(os.environ["COSMOS_VARS"]), "install_deps": False},
)
"""

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=21)
    a = ap.parse_args()
    home = fresh_home("cosmos")
    settings = get_settings()
    config = fleet_config(a.tenants, a.users, 500, a.days, seed=4, end_date=END, regions=("eu",))
    register_fleet(settings, config)
    generate(config, settings.stores.landing.root)
    ingest_tenants([s.tenant_id for s in config.tenants], config.start_date, END + timedelta(days=1), settings)
    wh = warehouses(TenantStore(settings).list())[0]
    v = dbt.dbt_vars(settings, wh)

    t = time.perf_counter()
    one = dbt.run_dbt(["build"], settings, wh, v)
    one_build = time.perf_counter() - t
    manifest = os.path.join(one["target_dir"], "manifest.json")

    # dag.test() syncs the DAG from a file of the dags bundle: write the cosmos DAG to one.
    dags = home / "cosmos_dags"
    dags.mkdir()
    (dags / "cosmos_features.py").write_text(COSMOS_DAG)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ.update(airflow_env(settings))
    os.environ.update(
        TENANTFLOW_WAREHOUSE_PATH=str(wh.path(settings)),
        COSMOS_MANIFEST=manifest,
        COSMOS_VARS=json.dumps(v),
        COSMOS_PROJECT=str(settings.dbt_project_dir),
    )
    prepare_airflow(settings)
    import importlib.util

    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location("cosmos_features", dags / "cosmos_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    render = time.perf_counter() - t
    t = time.perf_counter()
    run = dag.test()
    cosmos_run = time.perf_counter() - t
    report(
        "cosmos_overhead",
        tenants=a.tenants,
        dbt_nodes=len(one["nodes"]),
        airflow_tasks=len(dag.tasks),
        cosmos_state=str(getattr(run, "state", run)),
        one_dbt_build_seconds=round(one_build, 2),
        cosmos_render_seconds=round(render, 2),
        cosmos_dag_test_seconds=round(cosmos_run, 2),
        cosmos_over_one_build=round(cosmos_run / one_build, 2),
        cosmos_seconds_per_task=round(cosmos_run / max(1, len(dag.tasks)), 2),
    )
    shutil.rmtree(home)
