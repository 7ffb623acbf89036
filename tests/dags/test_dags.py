"""DAG integrity: every DAG imports, cheaply, with no DB queries or connections at parse time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.core.settings import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
HEAVY = ["pandas", "numpy", "pyarrow", "duckdb", "lightgbm", "mlflow", "great_expectations", "dbt", "evidently", "ml"]

PARSE = r"""
import json, socket, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]  # the dags folder (as Airflow adds it) and the repo root (PYTHONPATH)
import airflow.sdk  # noqa: F401  (Airflow itself may import what it likes)
before = set(sys.modules)
def refuse(*a, **k):
    raise RuntimeError("network connection attempted while parsing a DAG file")
socket.socket.connect = refuse
socket.create_connection = refuse
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)  # no examples: AIRFLOW__CORE__LOAD_EXAMPLES=False
if bag.import_errors:
    raise SystemExit(f"import errors: {bag.import_errors}")
dags = list(bag.dags.values())
def _core(d):
    # the scheduler's timetable (the DAG file's is the Task SDK's, which only describes it)
    from airflow.serialization.encoders import coerce_to_core_timetable
    return coerce_to_core_timetable(d.timetable)
def _runs_on_unpause(d):
    # would the scheduler start a run the moment this DAG is first unpaused?
    from datetime import datetime, timezone
    from airflow.timetables.base import TimeRestriction
    info = _core(d).next_dagrun_info(last_automated_data_interval=None,
                                        restriction=TimeRestriction(d.start_date, d.end_date, d.catchup))
    return info is not None and info.run_after <= datetime.now(timezone.utc)
new = sorted({m.split(".")[0] for m in set(sys.modules) - before} - {"airflow"})
info = []
for d in dags:
    info.append({
        "dag_id": d.dag_id, "tags": sorted(d.tags), "catchup": d.catchup, "doc_md": bool(d.doc_md),
        "tz": str(d.start_date.tzinfo) if d.start_date else None,
        "tasks": {t.task_id: type(t).__name__ for t in d.tasks},
        "mapped": [t.task_id for t in d.tasks if "Mapped" in type(t).__name__],
        "schedule": repr(_core(d).summary),
        "schedule_assets": sorted(str(getattr(a, "name", k)) for k, a in getattr(getattr(_core(d), "asset_condition", None), "iter_assets", lambda: [])()),
        "params": sorted(d.params.keys()),
        "forms": {k: {**d.params.get_param(k).schema, "description": d.params.get_param(k).description} for k in d.params},
        "all_done": sorted(t.task_id for t in d.tasks if t.trigger_rule == "all_done"),
        "short_circuits": sorted(t.task_id for t in d.tasks if "ShortCircuit" in type(t).__name__),
        "watched": sorted(t.task_id for t in d.task_dict["fail_run_on_failure"].get_flat_relatives(upstream=True))
        if "fail_run_on_failure" in d.task_dict else None,
        "watcher_rule": getattr(getattr(d.task_dict.get("fail_run_on_failure"), "trigger_rule", ""), "value", ""),
        "runs_on_unpause": _runs_on_unpause(d),
        "backfills": d.allowed_run_types is None or "backfill" in {str(getattr(t, "value", t)) for t in d.allowed_run_types},
    })
print(json.dumps({"dags": info, "new_modules": new}))
"""


def _parse(path: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        # a metadata DB that cannot exist: any query at parse time fails the import
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/no/such/dir/airflow.db",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run(
        [sys.executable, "-c", PARSE, str(path), str(REPO_ROOT / "dags"), str(REPO_ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_heavy_imports_db_or_network(path, tmp_path):
    res = _parse(path, tmp_path)
    assert len(res["dags"]) == 1, "one DAG per file"
    heavy = sorted(set(res["new_modules"]) & set(HEAVY))
    assert heavy == [], f"{path.name} imports {heavy} at parse time: import them inside tasks"
    dag = res["dags"][0]
    assert dag["dag_id"] == path.stem
    assert "tenantflow" in dag["tags"] and dag["catchup"] is False and dag["doc_md"]
    assert dag["tz"] is None or "UTC" in dag["tz"] or dag["tz"] == "utc"


def test_pipeline_shape(tmp_path):
    ingest = _parse(REPO_ROOT / "dags" / "ingest.py", tmp_path)["dags"][0]
    assert ingest["mapped"] == ["ingest_chunk"]
    assert {"start", "end", "tenants", "chunk_size", "current_spec"} <= set(ingest["params"])
    assert ingest["runs_on_unpause"] is True, "ingest picks up the last finished day when unpaused"
    features = _parse(REPO_ROOT / "dags" / "features.py", tmp_path)["dags"][0]
    assert features["mapped"] == ["build_and_check"]
    assert features["schedule_assets"] == ["lake_events"]
    # a backfill where a logical date means something: ingest's landing dates, not the lake as it is
    assert ingest["backfills"] is True and features["backfills"] is False


def test_ruff_bans_heavy_module_level_imports_in_dags():
    cfg = (REPO_ROOT / "pyproject.toml").read_text()
    assert "banned-module-level-imports" in cfg and '"ml"' in cfg


def test_model_plane_shape(tmp_path):
    train = _parse(REPO_ROOT / "dags" / "train.py", tmp_path)["dags"][0]
    assert sorted(train["mapped"]) == ["snapshot", "train_global", "train_tenants"]
    assert {"plan", "warehouses_to_snapshot", "global_jobs", "tenant_jobs", "report"} <= set(train["tasks"])
    assert {"tenants", "kinds", "reason", "force"} <= set(train["params"])
    # weekly *and* on the feature asset
    assert train["schedule_assets"] == ["feature_marts"] and "0 3 * * 0" in train["schedule"], train
    score = _parse(REPO_ROOT / "dags" / "score.py", tmp_path)["dags"][0]
    assert score["mapped"] == ["score_warehouse"]
    assert score["schedule_assets"] == ["trained_models"]
    # unpausing must not train or score at once on whatever the last cron slot left
    assert train["runs_on_unpause"] is False and score["runs_on_unpause"] is False
    # they read the newest snapshot and champions, whatever the logical date: no backfill offered
    assert train["backfills"] is False and score["backfills"] is False


def test_monitor_shape(tmp_path):
    mon = _parse(REPO_ROOT / "dags" / "monitor.py", tmp_path)["dags"][0]
    assert mon["mapped"] == ["check_warehouse"]
    # a task raising the Task SDK's DagRunTriggerException (dags/common/trigger.py), as the operator does
    assert mon["tasks"]["retrain"] == "_PythonDecoratedOperator"
    assert {"plan", "watch_promotions", "decide"} <= set(mon["tasks"])
    assert mon["schedule_assets"] == ["feature_marts"] and "0 6 * * *" in mon["schedule"]
    assert mon["runs_on_unpause"] is False and {"tenants", "retrain"} <= set(mon["params"])
    assert mon["backfills"] is False


def test_dag_files_are_wiring():
    """DAG files call the library and hold no logic of their own: no loops over tenants or kinds, short tasks."""
    import ast

    for path in DAG_FILES:
        tree = ast.parse(path.read_text())
        loops = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
        assert not loops, f"{path.name}: loops at lines {loops} belong in ml/"
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name != path.stem):
            assert fn.end_lineno - fn.lineno <= 15, f"{path.name}: task {fn.name} is {fn.end_lineno - fn.lineno} lines"
    limits = (REPO_ROOT / "dags" / "common" / "limits.py").read_text()
    assert "PARALLEL_TASKS = 2" in limits
    assert not [p.name for p in DAG_FILES if "max_active_tis_per_dag=2" in p.read_text()], (
        "parallelism is PARALLEL_TASKS"
    )


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_run_with_a_failed_task_ends_failed_and_the_form_is_labelled(path, tmp_path):
    """A DAG whose tasks run after failures (``all_done``) ends in ``fail_run_on_failure``, a leaf
    downstream of every task but a short circuit's branch (which the short circuit would skip);
    every form field has a title and a section, and ``tenants`` may be left empty."""
    dag = _parse(path, tmp_path)["dags"][0]
    if dag["all_done"]:
        assert dag["watcher_rule"] == "one_failed", dag
        after_short_circuit = {"retrain"} if dag["short_circuits"] else set()
        expected = set(dag["tasks"]) - {"fail_run_on_failure"} - set(dag["short_circuits"]) - after_short_circuit
        assert set(dag["watched"]) == expected, dag["watched"]
    for name, schema in dag["forms"].items():
        assert schema.get("title") and schema.get("section") and schema.get("description"), (path.name, name, schema)
    assert "null" in dag["forms"]["tenants"]["type"], "empty means every tenant: not a required field"
    assert "reports" not in dag["forms"], "the monitor's drift reports travel in the run's conf, not on the form"
