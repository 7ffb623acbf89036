"""``make demo``: five tenants over two regions, through the real Airflow scheduler.

It resets the demo home, onboards the tenants (registry rows only), generates their first
40 days of drops, starts Airflow's api-server, scheduler, dag-processor and triggerer and
triggers one ``ingest`` run; ``features``, ``train`` and ``score`` follow on their assets. Then
the next fortnight lands, in which one tenant's users change tastes: another ``ingest`` run,
``features``, and the ``monitor`` DAG, which should flag that tenant alone and start a ``train``
run with reason ``drift`` by itself. The demo waits for all of it, stops Airflow and prints the
per-tenant summary read from the real stores.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from datetime import date, timedelta

from ml.generate import DEMO_DRIFT_TENANT, DEMO_LATER_DAYS, DEMO_TRAINED_DAYS, demo_config, generate
from ml.ingest import settle_seconds
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
    first = replace(config, land_days=(0, DEMO_TRAINED_DAYS))
    result = generate(first, settings.landing)
    trained_until = config.start_date + timedelta(days=DEMO_TRAINED_DAYS)
    say(f"generated {result.events:,} events in {len(result.files)} landing files, "
        f"{config.start_date} .. {trained_until - timedelta(days=1)} (globex's drops carry injected faults)")
    # The demo compresses a fortnight into minutes: the champions are minutes old when the drift
    # shows, so the retrain cooldown (24 h by default) would hold the retrain back.
    os.environ.setdefault("TENANTFLOW_MONITOR_COOLDOWN_HOURS", "0")
    say(f"monitor cooldown after a training: {os.environ['TENANTFLOW_MONITOR_COOLDOWN_HOURS']} h for the demo "
        "(TENANTFLOW_MONITOR_COOLDOWN_HOURS)")

    from ml.platform import running_airflow

    say("starting Airflow: api-server, scheduler, dag-processor, triggerer ...")
    with running_airflow(settings) as airflow:
        for dag_id in ("ingest", "features", "train", "score", "monitor"):
            airflow.wait_dag(dag_id)
        say(f"Airflow is up on http://127.0.0.1:{settings.airflow_port} and has parsed the DAGs")
        # Unpausing lets the scheduler run them: ingest's own daily run (the latest interval)
        # may start beside ours; partitions are rebuilt idempotently, so that is harmless.
        for dag_id in ("score", "train", "features", "ingest"):
            airflow.set_paused(dag_id, False)
        features_run = _ingest_and_build(airflow, config.start_date, trained_until, say)
        train_runs = _wait_started_by(airflow, "train", "features", features_run, "publish", say, timeout=3600)
        _wait_started_by(airflow, "score", "train", _last(train_runs), "report", say)
        _print_models(status(settings), "first champions")

        # A fortnight later: the next days arrive, and umbrella's users' tastes have shifted.
        say(f"--- {DEMO_LATER_DAYS} days later: {config.start_date + timedelta(days=DEMO_TRAINED_DAYS)} .. "
            f"{config.end_date} arrive; from the first of them {DEMO_DRIFT_TENANT}'s users like other topics")
        result = generate(replace(config, land_days=(DEMO_TRAINED_DAYS, config.days)), settings.landing)
        say(f"generated {result.events:,} more events in {len(result.files)} landing files")
        airflow.set_paused("monitor", False)
        features_run = _ingest_and_build(airflow, trained_until, config.end_date + timedelta(days=1), say)
        monitor_runs = _wait_started_by(airflow, "monitor", "features", features_run, "publish", say)
        drift_runs = []
        for run in monitor_runs:
            tis = {t["task_id"]: t["state"] for t in airflow.task_instances("monitor", run["dag_run_id"])}
            say(f"monitor run {run['dag_run_id']}: decide={tis.get('decide')}, retrain={tis.get('retrain')}")
            if tis.get("retrain") == "success":
                drift_runs.append(airflow.wait_run("train", f"drift__{run['dag_run_id']}", timeout=3600))
        for run in drift_runs:
            say(f"train run {run['dag_run_id']} (triggered by the monitor, conf {_conf_line(run['conf'])}): {run['state']}")
        if drift_runs:
            _wait_started_by(airflow, "score", "train", _last(drift_runs), "report", say)
    rows = status(settings)
    print()
    print(format_table(rows))
    print()
    print(f"Data Docs:      {settings.gx_home / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    print("Status as JSON: .venv/bin/tenantflow status --json")
    print("Models:         .venv/bin/tenantflow models list   (audit: tenantflow models audit)")
    print("Drift retrains: .venv/bin/tenantflow monitor requests")
    print("Inspect runs:   make up   (Airflow UI and MLflow UI on local ports, login printed)")
    missing = [f"{k}.{r['tenant_id']}" for r in rows for k, m in r["models"].items() if not m["champion_version"]]
    if missing:
        print(f"no champion (no model beat its baseline yet): {', '.join(missing)}")
    if not drift_runs:
        raise SystemExit("the monitor started no drift retrain; its task logs are in the Airflow UI (make up)")
    if any(r["state"] != "success" for r in drift_runs):
        raise SystemExit("the drift retrain failed; see the Airflow UI (make up) for its task logs")
    return rows


def _last(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r.get("queued_at") or "")


def _conf_line(conf: dict) -> str:
    return ", ".join(f"{k}={conf[k]}" for k in ("tenants", "kinds", "reason", "force") if k in conf)


def _ingest_and_build(airflow, start: date, end: date, say) -> dict:
    """Trigger one ``ingest`` run over [start, end); wait for it and the features run it starts."""
    time.sleep(settle_seconds())  # ingest reads a landing file only once it has been unchanged this long
    run_id = airflow.trigger("ingest", {"start": start.isoformat(), "end": end.isoformat()})
    say(f"triggered ingest run {run_id} for landing dates {start} .. {end - timedelta(days=1)}")
    run = airflow.wait_run("ingest", run_id)
    say(f"ingest run {run['state']}")
    if run["state"] != "success":
        raise SystemExit("the ingest run failed; open the Airflow UI (make up) or "
                         f"{airflow.settings.airflow_home / 'logs'} for the task logs")  # fmt: skip
    # The features run that *our* ingest run's asset event triggers (the scheduler's own daily
    # ingest run may have triggered an earlier one on a partly ingested lake).
    return _last(_wait_started_by(airflow, "features", "ingest", run, "publish", say))


def _wait_started_by(airflow, dag_id: str, upstream: str, upstream_run: dict, task_id: str, say,
                     timeout: float = 1800) -> list[dict]:  # fmt: skip
    """Wait for the runs of ``dag_id`` queued after ``upstream_run``'s asset-emitting task started."""
    emitted = next(t for t in airflow.task_instances(upstream, upstream_run["dag_run_id"]) if t["task_id"] == task_id)
    runs = airflow.wait_idle(dag_id, after=emitted["start_date"], timeout=timeout)
    say(f"{dag_id} run(s) after {upstream}: " + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs))
    if any(r["state"] != "success" for r in runs):
        raise SystemExit(f"a {dag_id} run failed; see the Airflow UI (make up) for its task logs")
    return runs


def _print_models(rows: list[dict], title: str) -> None:
    print(f"\n{title}:")
    for r in rows:
        for kind, m in r["models"].items():
            h = ", ".join(f"{k}={v:.3f}" for k, v in m["metrics"].items())
            print(f"  {r['tenant_id']:<9} {kind:<11} v{m['champion_version']} ({m['trained_on']})  {h}")
    print()
