"""The DAGs in real Airflow 3 (api-server, scheduler, dag-processor, triggerer, LocalExecutor)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ml.core.settings import get_settings
from ml.core.warehouse import connect as warehouse_connect
from ml.data.generate import generate
from ml.data.generate.config import Drift
from ml.ops.airflow import running_airflow
from ml.ops.airflow_client import AirflowError
from ml.ops.status import status
from tests.world import register, small_config

# ~360 s alone; up to ~630 s beside the other half of the suite (make test's second xdist worker)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

FIRST_DAYS, LATER_DAYS = 30, 7
CONTRACT = {
    "tenant_id",
    "region",
    "isolation",
    "share_data",
    "onboarded_at",
    "events_in",
    "quarantined",
    "duplicates_dropped",
    "lake_rows",
    "feature_rows",
    "healthy",
    "health_problems",
    "models",
    "drift",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lake_digests(settings):
    return {
        p.relative_to(settings.home).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(settings.stores.lake.root.rglob("*.parquet"))
    }


def _clicks_only(settings, region: str, tenant_id: str, since: str = "") -> None:
    """Keep only a tenant's clicks in its landed Parquet files (of days from ``since``), without
    session ids: a product that sends nothing else (no views, completions, cancellations or sessions)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for path in settings.stores.landing.tenant_dir(region, tenant_id).rglob("*.parquet"):
        if path.parent.name.removeprefix("date=") < since:
            continue
        table = pq.read_table(path)
        table = table.filter(pc.equal(table.column("event_type"), "click"))
        session = table.schema.get_field_index("session_id")
        pq.write_table(table.set_column(session, "session_id", pa.nulls(table.num_rows, pa.string())), path)


def test_ingest_features_train_score_backfill_and_drift_retrain_through_airflow(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTFLOW_TRAIN_MIN_HISTORY_DAYS", "20")  # 30 generated days: tenants graduate
    monkeypatch.setenv("TENANTFLOW_AIRFLOW_PORT", str(_free_port()))
    monkeypatch.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "0")
    monkeypatch.setenv("TENANTFLOW_MONITOR_COOLDOWN_HOURS", "0")  # the champions are minutes old when acme drifts
    for k in [k for k in list(os.environ) if k.startswith("AIRFLOW")]:
        monkeypatch.delenv(k)
    for k in ("LOGGING__WORKER_LOG_SERVER_PORT", "LOGGING__TRIGGER_LOG_SERVER_PORT"):
        monkeypatch.setenv(f"AIRFLOW__{k}", str(_free_port()))  # beside any other Airflow on this machine
    monkeypatch.setenv("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", str(_free_port()))
    settings = get_settings()
    # 30 days land first and train the champions; a week later acme's users' tastes have shifted
    config = small_config(days=FIRST_DAYS + LATER_DAYS, faults=True, drifts=[Drift("acme", "taste_shift", FIRST_DAYS)])
    first_end = config.start_date + timedelta(days=FIRST_DAYS)
    register(settings, config)
    generate(replace(config, land_days=(0, FIRST_DAYS)), settings.stores.landing.root)
    _clicks_only(settings, "us", "initech")  # healthy, trained and monitored through the DAGs like the others

    with running_airflow(settings) as airflow:
        for dag_id in ("ingest", "features", "train", "score", "monitor"):
            airflow.wait_dag(dag_id)
        for dag_id in ("score", "train", "features", "ingest"):
            airflow.set_paused(dag_id, False)
        # Every wait below follows run ids: the runs our ingest run's asset events started, and the
        # runs theirs started. Runs started by anything else (ingest's own daily run on unpause)
        # neither end a wait early nor make it wait longer than they overlap.
        run_id = airflow.trigger("ingest", {"start": config.start_date.isoformat(), "end": first_end.isoformat()})
        run = airflow.wait_run("ingest", run_id, timeout=900)
        _honest(airflow, "ingest", [run])
        tis = {(t["task_id"], t["map_index"]): t["state"] for t in airflow.task_instances("ingest", run_id)}
        assert tis[("plan", -1)] == "success" and tis[("report", -1)] == "success"
        assert [k for k in tis if k[0] == "ingest_chunk"], "ingest_chunk is mapped"
        names = [t["rendered_map_index"] for t in airflow.task_instances("ingest", run_id) if t["map_index"] >= 0]
        assert names and all(n and any(t in n for t in ("acme", "globex", "initech")) for n in names), names
        feature_runs = airflow.wait_triggered("ingest", run_id, "features", timeout=900)
        assert all(r["run_type"] == "asset_triggered" for r in feature_runs), feature_runs
        _honest(airflow, "features", feature_runs)

        # feature_marts starts `train`; its trained_models event starts `score`
        train_runs = [
            r for f in feature_runs for r in airflow.wait_triggered("features", f["dag_run_id"], "train", 1200)
        ]
        assert all(r["run_type"] == "asset_triggered" for r in train_runs), train_runs
        _honest(airflow, "train", train_runs)
        tis = airflow.task_instances("train", train_runs[0]["dag_run_id"])
        assert len([t for t in tis if t["task_id"] == "train_tenants"]) >= 2, "tenants are trained in mapped chunks"
        assert {t["task_id"] for t in tis if t["task_id"] == "train_global"} == {"train_global"}
        score_runs = [r for t in train_runs for r in airflow.wait_triggered("train", t["dag_run_id"], "score", 900)]
        _honest(airflow, "score", score_runs)
        _check_models_and_predictions(settings)
        _check_lineage(settings, first_end)

        before = _lake_digests(settings)
        # A backfill of two past days from the scheduler: same bytes, no duplicates.
        backfill = airflow.request(
            "POST",
            "/api/v2/backfills",
            {
                "dag_id": "ingest",
                "from_date": f"{first_end - timedelta(days=3)}T00:00:00Z",
                "to_date": f"{first_end - timedelta(days=2)}T00:00:00Z",
                "max_active_runs": 2,
                "reprocess_behavior": "completed",
                "dag_run_conf": {},
            },
        )
        runs = airflow._poll(
            lambda: [r for r in airflow.runs("ingest") if r["run_type"] == "backfill"],
            lambda rs: len(rs) == 2 and all(r["state"] in ("success", "failed") for r in rs),
            900,
            3.0,
            f"backfill {backfill['id']} did not finish",
        )
        assert all(r["state"] == "success" for r in runs), runs
        assert _lake_digests(settings) == before
        # it changed no partition, so it emits no lake event: no feature build, no training
        for r in runs:
            tis = {t["task_id"]: t["state"] for t in airflow.task_instances("ingest", r["dag_run_id"])}
            assert tis["report"] == "skipped", tis

        _failed_tasks_fail_the_run(airflow, first_end)
        _a_week_later_the_monitor_retrains_acme(airflow, settings, config, first_end)
        _check_tenant_view(airflow, settings)
        _listens_on_loopback_only(airflow)
        _in_a_browser(airflow, settings, run_id, names)

    rows = {r["tenant_id"]: r for r in status(settings)}
    assert [t for t, r in rows.items() if r["drift"]["drifted"]] == ["acme"], {t: r["drift"] for t, r in rows.items()}
    assert rows["acme"]["drift"]["last_retrain_reason"] == "drift" and rows["acme"]["drift"]["report_path"]
    for r in rows.values():
        rec = r["models"]["recommender"]
        assert rec["champion_version"] and rec["trained_on"] in ("global", "tenant", "fine_tuned"), r["models"]
        # the champion never loses to the stronger popularity list on its holdout (it may be that list)
        assert rec["metrics"]["ndcg_at_10"] >= rec["baseline_metrics"]["ndcg_at_10"], rec
    # acme's drift retrain replaced v1 only by beating it on the same (post-shift) holdout beyond
    # chance (or as the same classic family refitted on the data after the shift); else v1, whose
    # whole-history features follow the shift, serves on and the retrain is the challenger
    rec = rows["acme"]["models"]["recommender"]
    if rec["champion_version"] == "1":
        assert rec["challenger_version"] == "2" and rec["trained_because"] != "drift", rec
        from ml.models import registry

        refused = registry.client(settings).get_model_version("recommender.acme", "2").tags
        assert refused["gate.decision"] == "refused" and "champion v1 (" in refused["gate.reason"], refused
    else:
        assert rec["trained_because"] == "drift" and rec["previous_champion"]["version"] == "1", rec
        if "refitted on newer data" not in rec["gate_reason"]:
            assert rec["metrics"]["ndcg_at_10"] > rec["previous_champion"]["metrics"]["ndcg_at_10"], rec
    assert set(rows) == {"acme", "globex", "initech"}
    for r in rows.values():
        assert set(r) >= CONTRACT
        assert r["healthy"], r["health_problems"]
        assert r["events_in"] == r["lake_rows"] + sum(r["quarantined"].values()) + r["duplicates_dropped"]
        assert r["feature_rows"] > 0
    assert rows["globex"]["quarantined"]["tenant_mismatch"] > 0 and rows["acme"]["quarantined"] == {}
    con = warehouse_connect(settings.stores.warehouse_file("us/silo_initech"), read_only=True)
    assert con.execute("select distinct tenant_id from user_features").fetchall() == [("initech",)]
    # initech sends clicks only: healthy, a recommender champion and no drift (above), every kind trained
    assert con.execute("select distinct event_type from stg_lake__events").fetchall() == [("click",)]
    con.close()
    # residency: no us tenant shares data, so no global model serves initech; it has models of its
    # own where its data suffices (its churn has too few labelled positives in this small world)
    models = rows["initech"]["models"]
    assert models["engagement"]["champion_version"] or models["engagement"]["challenger_version"], models


def _honest(airflow, dag_id: str, runs: list[dict]) -> None:
    """Each run succeeded, and honestly (issue 16, point 2): every task of it succeeded or was skipped
    (`fail_run_on_failure` among them), and no successful task logged an ERROR line."""
    for run in runs:
        assert run["state"] == "success", run
        tis = airflow.task_instances(dag_id, run["dag_run_id"])
        bad = [(t["task_id"], t["map_index"], t["state"]) for t in tis if t["state"] not in ("success", "skipped")]
        assert not bad, f"{dag_id} run {run['dag_run_id']} is green with {bad}"
        for ti in (t for t in tis if t["state"] == "success"):
            log = airflow.task_log(dag_id, run["dag_run_id"], ti)
            errors = [line.get("event") for line in log if str(line.get("level")).lower() in ("error", "critical")]
            assert not errors, f"{dag_id} {ti['task_id']}[{ti['map_index']}] succeeded with ERROR lines: {errors[:5]}"


def _failed_tasks_fail_the_run(airflow, first_end) -> None:
    """A train run whose `plan` fails (an unknown kind) ends failed, though its report runs after
    failures; the DAGs that ignore the logical date refuse a backfill (their `allowed_run_types`)."""
    run_id = airflow.trigger("train", {"kinds": ["no_such_kind"]})
    assert airflow.wait_run("train", run_id, timeout=600)["state"] == "failed"
    tis = {t["task_id"]: t for t in airflow.task_instances("train", run_id)}
    assert tis["plan"]["state"] == "failed" and tis["fail_run_on_failure"]["state"] == "failed", tis
    assert tis["report"]["state"] == "skipped", "nothing reached training: no trained_models event, no scoring"
    said = " ".join(json.dumps(line) for line in airflow.task_log("train", run_id, tis["plan"]))
    assert "no_such_kind" in said and "recommender" in said, said[-2000:]
    sunday = first_end - timedelta(days=(first_end.weekday() + 1) % 7)  # the weekly slot: Sunday 03:00 UTC
    for dag_id in ("train", "score", "monitor", "features"):  # they read the newest data, not the date
        body = {"dag_id": dag_id, "from_date": f"{sunday}T00:00:00Z", "to_date": f"{sunday}T06:00:00Z"}
        with pytest.raises(AirflowError, match="HTTP 400.*does not allow backfill"):
            airflow.request("POST", "/api/v2/backfills", body)
    assert not [r for r in airflow.runs("train") if r["run_type"] == "backfill"]


def _in_a_browser(airflow, settings, ingest_run: str, names: list[str]) -> None:
    """A person in headless Chromium (tests/ui): logs in, finds the ingest run's mapped tasks by the
    tenants they held, opens train's trigger form section by section, reads acme's row in the
    Tenants view as the status contract has it, and opens the Data Docs from it (issue 16, points 6
    and 8; screenshots in test-artifacts/ui)."""
    from ml.ops.airflow_client import airflow_password
    from tests.ui import airflow_ui as ui
    from tests.ui.browser import chromium

    with chromium() as driver:
        ui.log_in(driver, airflow.base, settings.airflow.user, airflow_password(settings))
        ui.mapped_names(driver, airflow.base, "ingest", ingest_run, "ingest_chunk", names)
        # a backfill is offered where a logical date means something (ingest's landing dates), not
        # where the DAG reads the newest data whatever the date (greyed out: allowed_run_types)
        assert ui.backfill_offered(driver, airflow.base, "ingest")
        assert not ui.backfill_offered(driver, airflow.base, "train")
        ui.trigger_form(
            driver,
            airflow.base,
            "train",
            {
                "What to run": ["Tenants", "Model kinds", "Select one or multiple values"],
                "Options": ["Reason", "Retrain unchanged tenants"],
                "Tuning (the defaults suit most runs)": ["Tenants per task"],
            },
        )
        row = ui.tenant_view(driver, airflow.base, "acme")
        ui.data_docs(driver, airflow.base)
    [acme] = status(settings, ["acme"])
    version = acme["models"]["recommender"]["champion_version"]
    assert f"{acme['lake_rows']:,} rows" in row and f"recommender: v{version} " in row, row


def _listens_on_loopback_only(airflow) -> None:
    """Every socket the Airflow components (and their children) listen on is on 127.0.0.1: the API
    server, the scheduler's health check and the task-log server (issue 15, point 3)."""
    import psutil

    listening = set()
    for name, proc in airflow.services.procs.items():
        root = psutil.Process(proc.pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                listening |= {
                    (name, c.laddr.ip, c.laddr.port)
                    for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN
                }
    ports = {port for _, _, port in listening}
    served = {int(os.environ[f"AIRFLOW__LOGGING__{k}_LOG_SERVER_PORT"]) for k in ("WORKER", "TRIGGER")}
    assert {airflow.settings.airflow.port, *served} <= ports, listening  # the task logs are still served
    assert all(ip in ("127.0.0.1", "::1") for _, ip, _ in listening), listening


def _check_tenant_view(airflow, settings) -> None:
    """The plugin's tenant view in the api-server: behind Airflow's login, one row per tenant as the
    status contract has it, a page per tenant whose drift report link is served (issue 16, point 4)."""
    import re
    import urllib.parse

    assert airflow.http.get("/tenantflow/").status_code in (401, 403), "the view needs an Airflow login"
    auth = {"Authorization": f"Bearer {airflow.token()}"}
    page = airflow.http.get("/tenantflow/", headers=auth)
    assert page.status_code == 200, page.text[:1000]
    rows = {r["tenant_id"]: r for r in status(settings)}
    shown = airflow.http.get("/tenantflow/status.json", headers=auth).json()
    assert {r["tenant_id"]: (r["healthy"], r["lake_rows"]) for r in shown} == {
        t: (r["healthy"], r["lake_rows"]) for t, r in rows.items()
    }
    for t, r in rows.items():
        row = page.text.split(f'data-tenant-id="{t}"', 1)[1].split("</tr>", 1)[0]
        assert f"{r['lake_rows']:,} rows" in row and ("healthy" if r["healthy"] else "unhealthy") in row, row
        version = r["models"]["recommender"]["champion_version"]
        assert f"recommender: v{version} " in row, row
    acme = airflow.http.get("/tenantflow/tenants/acme", headers=auth)
    assert acme.status_code == 200 and "ndcg_at_10" in acme.text, acme.text[:1000]
    assert f"The API serves features snapshot {rows['acme']['published']['snapshot_id']} (cutoff" in acme.text
    report = re.search(r'href="(\.\./files/monitoring/[^"]+)"', acme.text)
    assert report, "acme drifted: its page links its Evidently report"
    served = airflow.http.get(urllib.parse.urljoin("/tenantflow/tenants/acme", report.group(1)), headers=auth)
    assert served.status_code == 200 and served.content == Path(rows["acme"]["drift"]["report_path"]).read_bytes()
    checks = airflow.http.get("/tenantflow/tenants/globex/checks", headers=auth)  # GX results, no CDN
    assert checks.status_code == 200 and 'data-suite="landing/' in checks.text and "expectations met" in checks.text
    assert not re.findall(r'(?:src|href)="https?://', checks.text), "the checks page loads nothing from elsewhere"
    health = "Features\nhealthy at" if rows["globex"]["healthy"] else "Features held back"  # dbt's and GX's word
    assert health in checks.text
    docs = airflow.http.get("/tenantflow/files/datadocs/index.html", headers=auth)
    assert docs.status_code == 200, "the Tenants view serves GX's Data Docs"
    loads = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="(https?://[^"]+)"', docs.text)
    assert not loads, f"the Data Docs load nothing from the internet: {loads}"
    jquery = airflow.http.get("/tenantflow/files/datadocs/static/vendor/jquery/dist/jquery.min.js", headers=auth)
    assert jquery.status_code == 200 and "jQuery" in jquery.text[:500], "the site's own copy of what it loads"
    page = re.search(r"(validations/[^\"' ]+?\.html)", docs.text)  # in the index's table data
    assert page, "the Data Docs index lists validation results"
    validation = airflow.http.get(f"/tenantflow/files/datadocs/{page.group(1)}", headers=auth)
    assert validation.status_code == 200 and "Data asset:" in validation.text, validation.status_code
    assert not re.search(r"Data asset:(?:\s|<[^>]+>)*None\b", validation.text), "every page names its data asset"
    escape = airflow.http.get("/tenantflow/files/monitoring/..%2F..%2Fsecrets%2Fairflow-admin-password", headers=auth)
    assert escape.status_code == 404, escape.text[:200]
    views = [v for p in airflow.request("GET", "/api/v2/plugins")["plugins"] for v in p.get("external_views", [])]
    assert {"name": "Tenants", "href": "/tenantflow/"}.items() <= next(
        v for v in views if v["name"] == "Tenants"
    ).items()


def _check_models_and_predictions(settings) -> None:
    """The registry contract, read back through the MLflow client, and the batch predictions."""
    from ml.models import registry

    c = registry.client(settings)
    glob = c.get_model_version_by_alias("recommender.global.eu", "champion")
    assert glob.tags["tenant_id"] == "global.eu" and glob.tags["trained_on"] == "global"
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
        con = warehouse_connect(settings.stores.warehouse_file(key), read_only=True)
        rows = con.execute(
            "select tenant_id, model_name, model_version, count(*) from predictions.recommendations group by all"
        ).fetchall()
        con.close()
        assert {r[0] for r in rows} == tenants
        for tid, name, version, n in rows:
            champ = c.get_model_version_by_alias(name, "champion")
            assert name == f"recommender.{tid}" and version == str(champ.version) and n > 0


def _check_lineage(settings, first_end) -> None:
    """The OpenLineage events (the provider's file transport) link acme's lake partitions, its
    pool's marts, its snapshot and the recommender version trained on it; every dataset names
    its tenants and region."""
    from ml.models import registry
    from ml.ops.lineage import events

    done = [e for e in events(settings.stores.lineage_events) if e["eventType"] == "COMPLETE"]
    by_job: dict[str, list[dict]] = {}
    for e in done:
        by_job.setdefault(e["job"]["name"], []).append(e)
    assert {"ingest.ingest_chunk", "features.build_and_check", "train.snapshot", "train.train_tenants"} <= set(by_job)
    for e in done:
        for d in e.get("inputs", []) + e.get("outputs", []):
            tags = {(t["key"], t["value"]) for t in d["facets"]["tags"]["tags"]}
            assert {k for k, _ in tags} >= {"tenant", "region", "layer"}, (e["job"]["name"], d["name"])

    def touched(job: str, side: str, name_end: str) -> list[dict]:
        """The datasets of a job's events on one side whose name ends so and that hold acme's data."""
        return [
            d
            for e in by_job[job]
            for d in e.get(side, [])
            if d["name"].endswith(name_end)
            and ("tenant", "acme") in {(t["key"], t["value"]) for t in d["facets"]["tags"]["tags"]}
        ]

    lake = touched("ingest.ingest_chunk", "outputs", "lake/region=eu/tenant=acme")
    days = {p["identifier"] for d in lake for p in d["outputFacets"]["subset"]["outputCondition"]["partitions"]}
    assert f"date={(first_end - timedelta(days=1)).isoformat()}" in days and len(days) == FIRST_DAYS, sorted(days)
    assert {d["name"] for d in touched("features.build_and_check", "inputs", "tenant=acme")} == {lake[0]["name"]}
    marts = touched("features.build_and_check", "outputs", "main.ranking_examples")
    assert marts and marts[0]["namespace"] == f"duckdb://{settings.stores.warehouse_file('eu/pool').resolve()}"
    assert touched("train.snapshot", "inputs", "main.ranking_examples")[0]["namespace"] == marts[0]["namespace"]
    snaps = {d["facets"]["version"]["datasetVersion"] for d in touched("train.snapshot", "outputs", "tenant=acme")}
    models = touched("train.train_tenants", "outputs", "recommender.acme")
    assert models, "the train run's lineage names acme's recommender"
    c = registry.client(settings)
    for m in models:
        version = c.get_model_version("recommender.acme", m["facets"]["version"]["datasetVersion"])
        assert version.tags["snapshot_id"] in snaps
    inputs = touched("train.train_tenants", "inputs", "tenant=acme")
    assert {d["facets"]["version"]["datasetVersion"] for d in inputs} <= snaps


def _check_monitor_lineage(settings) -> None:
    """The monitor's OpenLineage events name what acme was judged on (its recommender champion, its
    snapshot, its pool's events) and what was written for it (the monitoring table, its reports)."""
    from ml.ops.lineage import events

    def tenants(d: dict) -> set[str]:
        return {t["value"] for t in d["facets"]["tags"]["tags"] if t["key"] == "tenant"}

    done = [e for e in events(settings.stores.lineage_events) if e["eventType"] == "COMPLETE"]
    done = [e for e in done if e["job"]["name"] == "monitor.check_warehouse"]
    read = {d["name"] for e in done for d in e.get("inputs", []) if "acme" in tenants(d)}
    written = {d["name"] for e in done for d in e.get("outputs", []) if "acme" in tenants(d)}
    assert {"recommender.acme", "main.stg_lake__events"} <= read and "main.monitoring" in written, (read, written)
    assert str(settings.stores.snapshots.tenant_dir("eu", "acme").resolve()) in read
    assert str(settings.stores.monitoring_reports.tenant_dir("eu", "acme").resolve()) in written
    assert all(tenants(d) for e in done for d in e.get("inputs", []) + e.get("outputs", []))


def _a_week_later_the_monitor_retrains_acme(airflow, settings, config, first_end) -> None:
    """The next week lands; the monitor flags acme (its tastes shifted) and starts one drift retrain."""
    from ml.models import registry
    from ml.monitoring.decisions import retrain_history

    # the monitor starts with this week's features, not with the feature events it missed while paused
    airflow.clear_queued_events("monitor")
    airflow.set_paused("monitor", False)
    generate(replace(config, land_days=(FIRST_DAYS, config.days)), settings.stores.landing.root)
    _clicks_only(settings, "us", "initech", since=first_end.isoformat())
    run_id = airflow.trigger(
        "ingest", {"start": first_end.isoformat(), "end": (config.end_date + timedelta(days=1)).isoformat()}
    )
    assert airflow.wait_run("ingest", run_id, timeout=900)["state"] == "success"
    feature_runs = airflow.wait_triggered("ingest", run_id, "features", timeout=900)
    assert all(r["state"] == "success" for r in feature_runs)
    monitor_runs = {
        r["dag_run_id"]: r
        for f in feature_runs
        for r in airflow.wait_triggered("features", f["dag_run_id"], "monitor", 900)
    }
    _honest(airflow, "monitor", list(monitor_runs.values()))
    _check_monitor_lineage(settings)
    retrained = []
    for monitor_run in monitor_runs:
        tis = {t["task_id"]: t["state"] for t in airflow.task_instances("monitor", monitor_run)}
        assert tis["watch_promotions"] == "success" and tis["decide"] in ("success", "skipped"), tis
        if tis["retrain"] == "success":
            retrained.append(monitor_run)
    assert len(retrained) == 1, f"one monitor run starts one drift retrain: {monitor_runs}"

    train_run = airflow.wait_run_exists("train", f"drift__{retrained[0]}")
    _honest(airflow, "train", [train_run])
    conf = train_run["conf"]
    assert conf["tenants"] == ["acme"] and conf["reason"] == "drift" and conf["force"] is True, conf
    assert "recommender" in conf["kinds"] and conf["reports"]["acme"]
    assert all(Path(p).is_file() and "tenant=acme" in p for p in conf["reports"]["acme"])
    tis = airflow.task_instances("train", train_run["dag_run_id"])
    assert not [t for t in tis if t["task_id"] == "train_global" and t["state"] == "success"], "no global retrain"
    # the retrain went through the gate: a new version of acme's recommender, made by this run
    c = registry.client(settings)
    latest = c.search_model_versions("name = 'recommender.acme'", order_by=["version_number DESC"], max_results=1)[0]
    run = c.get_run(latest.tags["run_id"])
    assert run.data.tags["reason"] == "drift" and run.data.tags["actor"].endswith(train_run["dag_run_id"])
    assert latest.tags["gate.decision"] in ("promoted", "refused") and latest.tags["gate.reason"]
    assert [(r["tenant_id"], r["status"]) for r in retrain_history(None, settings)] == [("acme", "done")]
    assert all(r["state"] == "success" for r in airflow.wait_triggered("train", train_run["dag_run_id"], "score", 900))
