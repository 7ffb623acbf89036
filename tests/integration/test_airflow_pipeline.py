"""The DAGs in real Airflow 3 (api-server, scheduler, dag-processor, triggerer, LocalExecutor)."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, timedelta

import duckdb
import pytest

from ml.generate import generate
from ml.platform import running_airflow
from ml.settings import get_settings
from ml.status import status
from ml.tenants import warehouse_path
from tests.conftest import END, register, small_config

pytestmark = pytest.mark.integration

CONTRACT = {"tenant_id", "region", "isolation", "share_data", "onboarded_at", "events_in", "quarantined",
            "duplicates_dropped", "lake_rows", "feature_rows", "healthy", "health_problems", "models", "drift"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lake_digests(settings):
    return {p.relative_to(settings.home).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(settings.lake.rglob("*.parquet"))}


def test_ingest_features_train_score_and_backfill_through_airflow(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTFLOW_MIN_HISTORY_DAYS", "20")  # 30 generated days: tenants graduate
    monkeypatch.setenv("TENANTFLOW_AIRFLOW_PORT", str(_free_port()))
    monkeypatch.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "0")
    for k in [k for k in list(__import__("os").environ) if k.startswith("AIRFLOW")]:
        monkeypatch.delenv(k)
    settings = get_settings()
    config = small_config(days=30, faults=True)
    register(settings, config)
    generate(config, settings.landing)

    with running_airflow(settings) as airflow:
        for dag_id in ("ingest", "features", "train", "score"):
            airflow.wait_dag(dag_id)
        for dag_id in ("score", "train", "features", "ingest"):
            airflow.set_paused(dag_id, False)
        from datetime import datetime

        since = datetime.now(UTC).isoformat()
        run_id = airflow.trigger("ingest", {"start": config.start_date.isoformat(),
                                            "end": (END + timedelta(days=1)).isoformat()})
        run = airflow.wait_run("ingest", run_id, timeout=900)
        assert run["state"] == "success"
        tis = {(t["task_id"], t["map_index"]): t["state"] for t in airflow.task_instances("ingest", run_id)}
        assert tis[("plan", -1)] == "success" and tis[("publish", -1)] == "success"
        assert [k for k in tis if k[0] == "ingest_chunk"], "ingest_chunk is mapped"
        feature_runs = airflow.wait_idle("features", after=since, timeout=900)
        assert all(r["state"] == "success" for r in feature_runs), feature_runs
        assert any(r["run_type"] == "asset_triggered" for r in feature_runs)

        # feature_marts starts `train`; its trained_models event starts `score`
        train_runs = airflow.wait_idle("train", after=since, timeout=1200)
        assert all(r["state"] == "success" for r in train_runs), train_runs
        assert {r["run_type"] for r in train_runs} == {"asset_triggered"}, "unpausing train must not start a run"
        tis = airflow.task_instances("train", train_runs[0]["dag_run_id"])
        assert len([t for t in tis if t["task_id"] == "train_tenants"]) >= 2, "tenants are trained in mapped chunks"
        assert {t["task_id"] for t in tis if t["task_id"] == "train_global"} == {"train_global"}
        score_runs = airflow.wait_idle("score", after=since, timeout=900)
        assert all(r["state"] == "success" for r in score_runs), score_runs
        _check_models_and_predictions(settings)

        before = _lake_digests(settings)
        # A backfill of two past days from the scheduler: same bytes, no duplicates.
        backfill = airflow._request("POST", "/api/v2/backfills", {
            "dag_id": "ingest", "from_date": f"{END - timedelta(days=3)}T00:00:00Z",
            "to_date": f"{END - timedelta(days=2)}T00:00:00Z", "max_active_runs": 2,
            "reprocess_behavior": "completed", "dag_run_conf": {},
        })
        import time

        deadline = time.monotonic() + 900
        while True:
            runs = [r for r in airflow.runs("ingest") if r["run_type"] == "backfill"]
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                break
            assert time.monotonic() < deadline, runs
            time.sleep(3)
        assert backfill["id"] and len(runs) == 2 and all(r["state"] == "success" for r in runs)
        assert _lake_digests(settings) == before

    rows = {r["tenant_id"]: r for r in status(settings)}
    for r in rows.values():
        rec = r["models"]["recommender"]
        assert rec["champion_version"] and rec["trained_on"] in ("global", "tenant", "fine_tuned"), r["models"]
        assert rec["metrics"]["hit_rate_at_10"] > rec["baseline_metrics"]["hit_rate_at_10"]
    assert set(rows) == {"acme", "globex", "initech"}
    for r in rows.values():
        assert CONTRACT <= set(r)
        assert r["healthy"], r["health_problems"]
        assert r["events_in"] == r["lake_rows"] + sum(r["quarantined"].values()) + r["duplicates_dropped"]
        assert r["feature_rows"] > 0
    assert rows["globex"]["quarantined"]["tenant_mismatch"] > 0 and rows["acme"]["quarantined"] == {}
    con = duckdb.connect(str(warehouse_path(settings, "us/silo_initech")), read_only=True)
    assert con.execute("select distinct tenant_id from user_features").fetchall() == [("initech",)]
    con.close()


def _check_models_and_predictions(settings) -> None:
    """The registry contract, read back through the MLflow client, and the batch predictions."""
    from ml import registry

    c = registry.client(settings)
    glob = c.get_model_version_by_alias("recommender.global", "champion")
    assert glob.tags["tenant_id"] == "global" and glob.tags["trained_on"] == "global"
    run = c.get_run(glob.run_id)
    assert sorted(run.data.params["training_tenants"].split(",")) == ["acme", "globex"]  # initech is a silo
    for tid in ("acme", "globex", "initech"):
        champ = c.get_model_version_by_alias(f"recommender.{tid}", "champion")
        assert champ.tags["tenant_id"] == tid and champ.tags["snapshot_id"] and champ.tags["manifest_hash"]
        run = c.get_run(champ.tags["run_id"])
        assert run.data.tags["tenant_id"] == tid and "hit_rate_at_10" in run.data.metrics
        # the reason records how the train run that made it was triggered: the feature asset, or
        # the weekly cron (catchup=False runs the last missed week when the DAG is unpaused)
        dag_run_id = run.data.tags["actor"].split("/", 1)[1]
        assert dag_run_id.startswith(("asset_triggered__", "scheduled__")), dag_run_id
        expected = "features" if dag_run_id.startswith("asset_triggered__") else "schedule"
        assert champ.tags["reason"] == expected, (dag_run_id, champ.tags["reason"])
    for key, tenants in (("eu/pool", {"acme", "globex"}), ("us/silo_initech", {"initech"})):
        con = duckdb.connect(str(warehouse_path(settings, key)), read_only=True)
        rows = con.execute("select tenant_id, model_name, model_version, count(*) from predictions.recommendations "
                           "group by all").fetchall()
        con.close()
        assert {r[0] for r in rows} == tenants
        for tid, name, version, n in rows:
            champ = c.get_model_version_by_alias(name, "champion")
            assert name == f"recommender.{tid}" and version == str(champ.version) and n > 0
