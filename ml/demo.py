"""``make demo``: five tenants over two regions, through the real Airflow scheduler.

It resets the demo home, onboards the tenants (registry rows only), generates their drops,
starts Airflow's api-server, scheduler, dag-processor and triggerer, triggers one ``ingest``
run over the whole landing window (the ``features`` DAG then runs on the lake asset), waits
for both, stops Airflow and prints the per-tenant summary read from the real stores.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

from ml.generate import demo_config, generate
from ml.settings import Settings, get_settings
from ml.status import format_table, status
from ml.tenants import TenantRegistry, tenant_from_dict

DEMO_MARKER = ".tenantflow-demo"


def reset_home(settings: Settings) -> None:
    """Start from an empty home; refuse to wipe a home that the demo did not create."""
    home = settings.home
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise SystemExit(
                f"{home} holds state that the demo did not create; set TENANTFLOW_HOME to another "
                "folder for the demo, or remove it yourself."
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("created by `tenantflow demo`; the next demo run resets this folder\n")


def run_demo(settings: Settings | None = None, scale: float = 1.0) -> list[dict]:
    settings = settings or get_settings()
    t0 = time.perf_counter()
    say = lambda msg: print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)  # noqa: E731

    reset_home(settings)
    config, registry_rows = demo_config(scale=scale)
    registry = TenantRegistry(settings)
    for row in registry_rows:
        registry.add(tenant_from_dict(row))
    say(f"onboarded {len(registry_rows)} tenants: " + ", ".join(
        f"{r['tenant_id']} ({r['region']}, {r['isolation']}, share_data={'yes' if r['share_data'] else 'no'})"
        for r in registry_rows))
    result = generate(config, settings.landing)
    say(f"generated {result.events:,} events in {len(result.files)} landing files, "
        f"{config.start_date} .. {config.end_date} (globex's drops carry injected faults)")

    from ml.platform import running_airflow

    say("starting Airflow: api-server, scheduler, dag-processor, triggerer ...")
    with running_airflow(settings) as airflow:
        for dag_id in ("ingest", "features", "train", "score"):
            airflow.wait_dag(dag_id)
        say(f"Airflow is up on http://127.0.0.1:{settings.airflow_port} and has parsed the DAGs")
        # Unpausing lets the scheduler run them: ingest's own daily run (the latest interval)
        # may start beside ours; partitions are rebuilt idempotently, so that is harmless.
        for dag_id in ("score", "train", "features", "ingest"):
            airflow.set_paused(dag_id, False)
        run_id = airflow.trigger(
            "ingest",
            {"start": config.start_date.isoformat(), "end": (config.end_date + timedelta(days=1)).isoformat()},
        )
        say(f"triggered ingest run {run_id} for landing dates {config.start_date} .. {config.end_date}")
        run = airflow.wait_run("ingest", run_id)
        say(f"ingest run {run['state']}")
        if run["state"] != "success":
            raise SystemExit(f"the ingest run failed; open http://127.0.0.1:{settings.airflow_port} (or "
                             f"{settings.airflow_home / 'logs'}) for the task logs")
        # Wait for the features run that *our* ingest run's asset event triggers (the scheduler's
        # own daily ingest run may have triggered an earlier one on a partly ingested lake).
        publish = next(t for t in airflow.task_instances("ingest", run_id) if t["task_id"] == "publish")
        feature_runs = airflow.wait_idle("features", after=publish["start_date"])
        say("features run(s) on the lake asset: " + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in feature_runs))
        if any(r["state"] != "success" for r in feature_runs):
            raise SystemExit("a features run failed; see the Airflow UI (make up) for its task logs")
        # The feature_marts asset event of the last features run starts `train`; its
        # trained_models event starts `score`.
        last = max(feature_runs, key=lambda r: r.get("queued_at") or "")
        published = next(t for t in airflow.task_instances("features", last["dag_run_id"]) if t["task_id"] == "publish")
        train_runs = airflow.wait_idle("train", after=published["start_date"], timeout=3600)
        say("train run(s) on the feature asset: " + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in train_runs))
        if any(r["state"] != "success" for r in train_runs):
            raise SystemExit("a train run failed; see the Airflow UI (make up) for its task logs")
        last = max(train_runs, key=lambda r: r.get("queued_at") or "")
        reported = next(t for t in airflow.task_instances("train", last["dag_run_id"]) if t["task_id"] == "report")
        score_runs = airflow.wait_idle("score", after=reported["start_date"])
        say("score run(s) on the trained_models asset: " + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in score_runs))
    rows = status(settings)
    print()
    print(format_table(rows))
    print()
    print(f"Data Docs:      {settings.gx_home / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    print("Status as JSON: .venv/bin/tenantflow status --json")
    print("Models:         .venv/bin/tenantflow models list   (audit: tenantflow models audit)")
    print("Inspect runs:   make up   (Airflow UI and MLflow UI on local ports, login printed)")
    missing = [f"{k}.{r['tenant_id']}" for r in rows for k, m in r["models"].items() if not m["champion_version"]]
    if missing:
        print(f"no champion (no model beat its baseline yet): {', '.join(missing)}")
    if any(r["state"] != "success" for r in score_runs):
        raise SystemExit("a score run failed; see the Airflow UI (make up) for its task logs")
    return rows
