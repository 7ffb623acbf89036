"""``make demo``: five tenants over two regions, through the real Airflow scheduler.

It resets the demo home, onboards the tenants (a row each, no code), generates their first
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
from typing import Any

from ml.core import audit
from ml.core.settings import Settings, get_settings
from ml.core.tenant_seed import tenant_from_dict
from ml.core.tenants import TenantStore
from ml.data.data_docs import data_docs_index
from ml.data.generate import generate
from ml.data.generate.config import (
    DEMO_DRIFT_TENANT,
    DEMO_LATER_DAYS,
    DEMO_TRAINED_DAYS,
    GenerationConfig,
    demo_config,
)
from ml.ops.airflow_client import TENANTFLOW_DAGS, AirflowClient
from ml.ops.status import champion_label, format_table, status

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


def run_demo(settings: Settings | None = None, scale: float = 1.0) -> list[dict[str, Any]]:
    """The demo (see the module docstring); the status rows it ends with.

    Raises:
        SystemExit: a run failed, or the monitor started no drift retrain (the message says where to look).
    """
    settings = settings or get_settings()
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    reset_home(settings)
    config = _onboard_and_land(settings, scale, say)
    # The demo compresses a fortnight into minutes: the champions are minutes old when the drift
    # shows, so the retrain cooldown (24 h by default) would hold the retrain back.
    os.environ.setdefault("TENANTFLOW_MONITOR_COOLDOWN_HOURS", "0")  # the Airflow tasks inherit it
    cooldown = get_settings().monitor.cooldown_hours  # yours, if you set it
    say(f"monitor cooldown after a training: {cooldown:g} h for the demo (TENANTFLOW_MONITOR_COOLDOWN_HOURS)")

    from ml.ops.airflow import running_airflow

    say("starting Airflow: api-server, scheduler, dag-processor, triggerer ...")
    with running_airflow(settings) as airflow:
        for dag_id in TENANTFLOW_DAGS:
            airflow.wait_dag(dag_id)
        say(f"Airflow is up on http://127.0.0.1:{settings.airflow.port} and has parsed the DAGs")
        # Unpausing lets the scheduler run them: ingest's own daily run (the latest interval)
        # may start beside ours; partitions are rebuilt idempotently, and with nothing landed in
        # its interval it emits no lake event, so it starts no feature build or training.
        for dag_id in ("score", "train", "features", "ingest"):
            airflow.set_paused(dag_id, False)
        _first_champions(airflow, config, say)
        _print_models(status(settings), "first champions")
        drift_runs = _a_fortnight_later(airflow, config, say)
    rows = status(settings)
    _print_summary(settings, rows)
    if not drift_runs:
        raise SystemExit("the monitor started no drift retrain; its task logs are in the Airflow UI (make up)")
    if any(r["state"] != "success" for r in drift_runs):
        raise SystemExit("the drift retrain failed; see the Airflow UI (make up) for its task logs")
    return rows


def _onboard_and_land(settings: Settings, scale: float, say: Any) -> GenerationConfig:
    """Onboard the demo's tenants and land their first days; the whole window's config."""
    config, tenant_rows = demo_config(scale=scale)
    store = TenantStore(settings)
    for row in tenant_rows:
        store.add(tenant_from_dict(row))
    shares = {True: "yes", False: "no"}
    onboarded = ", ".join(
        f"{r['tenant_id']} ({r['region']}, {r['isolation']}, share_data={shares[bool(r['share_data'])]})"
        for r in tenant_rows
    )
    say(f"onboarded {len(tenant_rows)} tenants: {onboarded}")
    result = generate(replace(config, land_days=(0, DEMO_TRAINED_DAYS)), settings.stores.landing.root)
    last = config.start_date + timedelta(days=DEMO_TRAINED_DAYS - 1)
    say(
        f"generated {result.events:,} events in {len(result.files)} landing files, {config.start_date} .. {last} "
        "(globex's drops carry injected faults)"
    )
    return config


def _first_champions(airflow: AirflowClient, config: GenerationConfig, say: Any) -> None:
    """Ingest the first days; features, train and score follow on their assets."""
    trained_until = config.start_date + timedelta(days=DEMO_TRAINED_DAYS)
    for features_run in _ingest_and_build(airflow, config.start_date, trained_until, say):
        for train_run in _followed_by(airflow, "features", features_run, "train", say):
            _followed_by(airflow, "train", train_run, "score", say)


def _a_fortnight_later(airflow: AirflowClient, config: GenerationConfig, say: Any) -> list[dict[str, Any]]:
    """The next days land, umbrella's tastes shifted: the monitor's drift retrains (the runs)."""
    trained_until = config.start_date + timedelta(days=DEMO_TRAINED_DAYS)
    say(
        f"--- {DEMO_LATER_DAYS} days later: {trained_until} .. {config.end_date} arrive; from the first of them "
        f"{DEMO_DRIFT_TENANT}'s users like other topics"
    )
    result = generate(replace(config, land_days=(DEMO_TRAINED_DAYS, config.days)), airflow.settings.stores.landing.root)
    say(f"generated {result.events:,} more events in {len(result.files)} landing files")
    airflow.clear_queued_events("monitor")  # it starts with this fortnight's features, not older ones
    airflow.set_paused("monitor", False)
    drift_runs = []
    for features_run in _ingest_and_build(airflow, trained_until, config.end_date + timedelta(days=1), say):
        for monitor_run in _followed_by(airflow, "features", features_run, "monitor", say):
            tis = {t["task_id"]: t["state"] for t in airflow.task_instances("monitor", monitor_run)}
            say(f"monitor run {monitor_run}: decide={tis.get('decide')}, retrain={tis.get('retrain')}")
            if tis.get("retrain") == "success":
                drift_runs.append(airflow.wait_run_exists("train", f"drift__{monitor_run}"))
    for run in drift_runs:
        conf = _conf_line(run["conf"])
        say(f"train run {run['dag_run_id']} (triggered by the monitor, conf {conf}): {run['state']}")
        _followed_by(airflow, "train", run["dag_run_id"], "score", say)
    return drift_runs


def _print_summary(settings: Settings, rows: list[dict[str, Any]]) -> None:
    print()
    print(format_table(rows))
    print()
    print(f"Data Docs:      {data_docs_index(settings)}")
    print("Status as JSON: .venv/bin/tenantflow status --json")
    print("Models:         .venv/bin/tenantflow models list   (audit: .venv/bin/tenantflow models audit)")
    chain = audit.verify(settings)
    print(
        f"Audit log:      {chain.entries} entries, hash chain {'intact' if chain.ok else 'BROKEN: ' + '; '.join(chain.problems)}"
        "   (.venv/bin/tenantflow audit verify | export)"
    )
    print("Drift retrains: .venv/bin/tenantflow monitor requests")
    print("Inspect runs:   make up   (Airflow UI and MLflow UI on local ports, login printed)")
    missing = [f"{k}.{r['tenant_id']}" for r in rows for k, m in r["models"].items() if not m["champion_version"]]
    if missing:
        print(f"no champion (no model beat its baseline yet): {', '.join(missing)}")


def _conf_line(conf: dict[str, Any]) -> str:
    return ", ".join(f"{k}={conf[k]}" for k in ("tenants", "kinds", "reason", "force") if k in conf)


def _ingest_and_build(airflow: AirflowClient, start: date, end: date, say: Any) -> list[str]:
    """Trigger one ``ingest`` run over [start, end); wait for it and the features runs it starts (their ids)."""
    time.sleep(airflow.settings.landing.settle_seconds)  # ingest reads a file once unchanged this long
    run_id = airflow.trigger("ingest", {"start": start.isoformat(), "end": end.isoformat()})
    say(f"triggered ingest run {run_id} for landing dates {start} .. {end - timedelta(days=1)}")
    run = airflow.wait_run("ingest", run_id)
    say(f"ingest run {run['state']}")
    if run["state"] != "success":
        raise SystemExit(
            f"the ingest run failed; open the Airflow UI (make up) or {airflow.settings.airflow_home / 'logs'} "
            "for the task logs"
        )
    return _followed_by(airflow, "ingest", run_id, "features", say)


def _followed_by(airflow: AirflowClient, upstream: str, run_id: str, dag_id: str, say: Any) -> list[str]:
    """Wait for the runs of ``dag_id`` that ``upstream``'s run ``run_id`` started by its asset events (their ids)."""
    runs = airflow.wait_triggered(upstream, run_id, dag_id, timeout=3600)
    say(f"{dag_id} run(s) after {upstream}: " + ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs))
    if any(r["state"] != "success" for r in runs):
        raise SystemExit(f"a {dag_id} run failed; see the Airflow UI (make up) for its task logs")
    return [r["dag_run_id"] for r in runs]


def _print_models(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}:")
    for r in rows:
        for kind, m in r["models"].items():
            # a champion without a holdout of its own (a young tenant's) says why the gate took it
            h = ", ".join(f"{k}={v:.3f}" for k, v in m["metrics"].items()) or m.get("gate_reason") or ""
            champion = f"v{m['champion_version']} ({champion_label(m)})" if m["champion_version"] else "no champion yet"
            print(f"  {r['tenant_id']:<9} {kind:<11} {champion}  {h}")
    print()
