"""``tenantflow``: onboard tenants, generate data, run the demo, show status, print the env."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from ml.registry import RegistryError
from ml.settings import REPO_ROOT, get_settings
from ml.tenants import MODEL_KINDS, Tenant, TenantError, TenantRegistry, parse_bool, validate_slug


def _date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-20, got {s!r}") from None


def _cmd_tenants(args: argparse.Namespace) -> int:
    settings = get_settings()
    registry = TenantRegistry(settings)
    if args.tenants_cmd == "add":
        tenant = Tenant(
            tenant_id=validate_slug(args.tenant_id),
            region=args.region,
            isolation=args.isolation,
            share_data=parse_bool(args.share_data),
            display_name=args.display_name or args.tenant_id,
            onboarded_at=args.onboarded_at or date.today(),
            model_kinds=tuple(args.model_kinds.split(",")),
            quota_events_per_day=args.quota_events_per_day,
            quota_requests_per_minute=args.quota_requests_per_minute,
        )
        registry.add(tenant, replace=args.replace)
        print(f"onboarded {tenant.tenant_id} in region {tenant.region} ({tenant.isolation}); "
              f"its warehouse: {tenant.warehouse_key}. The next DAG runs pick it up.")
    elif args.tenants_cmd == "list":
        tenants = registry.list()
        if args.json:
            print(json.dumps([t.to_json() for t in tenants], indent=1))
        else:
            for t in tenants:
                print(f"{t.tenant_id:<20} {t.region:<8} {t.isolation:<5} share_data={'yes' if t.share_data else 'no':<3} "
                      f"onboarded {t.onboarded_at}  {t.display_name}")
    elif args.tenants_cmd == "show":
        print(json.dumps(registry.get(args.tenant_id).to_json(), indent=1))
    elif args.tenants_cmd == "remove":
        registry.remove(args.tenant_id)
        print(f"removed {args.tenant_id} from the registry (its lake and warehouse data are kept).")
    elif args.tenants_cmd == "seed":
        for t in registry.seed_from_file(Path(args.file)):
            print(f"registered {t.tenant_id}")
    elif args.tenants_cmd == "keys":
        from ml import apikeys

        if args.keys_cmd == "create":
            record, plain = apikeys.create_key(args.tenant_id, args.label or "", settings)
            print(f"API key {record.key_id} for tenant {record.tenant_id} (shown once; only its hash is stored):")
            print(plain)
        elif args.keys_cmd == "revoke":
            record = apikeys.revoke_key(args.tenant_id, args.key_id, settings)
            print(f"revoked key {record.key_id} of tenant {record.tenant_id} at {record.revoked_at}; a running API "
                  "refuses it within a second")
        else:
            print(json.dumps([k.public() for k in apikeys.list_keys(args.tenant_id, settings)], indent=1))
    elif args.tenants_cmd == "ab":
        from ml.online import set_split

        set_split(args.tenant_id, args.kind, args.challenger_percent, settings)
        print(f"tenant {args.tenant_id}: {args.challenger_percent:g}% of users get the {args.kind} challenger "
              "(by a stable hash of the user id); the API picks it up within a second")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from ml.generate import Drift, Faults, demo_config, fleet_config, generate

    settings = get_settings()
    if args.demo:
        config, rows = demo_config(end_date=args.end_date, seed=args.seed)
    else:
        config = fleet_config(args.tenants, args.users, args.items, args.days, args.seed, args.end_date,
                              args.formats.split(","))
        rows = [dict(tenant_id=s.tenant_id, region=s.region, onboarded_at=config.start_date) for s in config.tenants]
    drifts = [Drift(t, kind, int(day)) for t, kind, day in (d.split(":") for d in args.drift)]
    faults = [Faults(f.split(":")[0], tuple(f.split(":")[1].split("+")) if ":" in f else Faults.__dataclass_fields__["kinds"].default)
              for f in args.faults]
    from dataclasses import replace

    land = tuple(int(x) for x in args.land_days.split(":")) if args.land_days else None
    config = replace(config, drifts=[*config.drifts, *drifts], faults=[*config.faults, *faults], land_days=land)
    if args.register:
        from ml.tenants import tenant_from_dict

        registry = TenantRegistry(settings)
        for row in rows:
            registry.add(tenant_from_dict(row), replace=True)
    out = Path(args.out) if args.out else settings.landing
    import time

    t = time.perf_counter()
    result = generate(config, out)
    secs = time.perf_counter() - t
    print(f"wrote {result.events:,} events for {len(result.events_by_tenant)} tenants in {len(result.files)} files "
          f"under {out} ({config.start_date} .. {config.end_date}, seed {config.seed}) in {secs:.1f}s "
          f"({result.events / secs:,.0f} events/s)")
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ml import features, monitor

    settings = get_settings()
    if args.monitor_cmd == "policy":
        TenantRegistry(settings).get(validate_slug(args.tenant_id))  # an unknown tenant is an error, not defaults
        changes = dict(kv.split("=", 1) for kv in args.set)
        try:
            policy = monitor.set_tenant_policy(args.tenant_id, changes, settings) if changes else \
                monitor.MonitorPolicy.for_tenant(validate_slug(args.tenant_id), settings)
        except ValueError as exc:
            raise TenantError(str(exc)) from None
        print(json.dumps({"tenant_id": args.tenant_id, "policy": asdict(policy),
                          "overrides": monitor.tenant_overrides(args.tenant_id, settings)}, indent=1))
    elif args.monitor_cmd == "requests":
        print(json.dumps(monitor.retrain_history(args.tenant, settings), indent=1))
    else:
        for wh in features.warehouses(features.tenants_for(settings, args.tenant or None)):
            res = monitor.monitor_warehouse(wh, settings, tenants=args.tenant or None)
            print(json.dumps(res, indent=1, default=str))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from ml.ingest import ingest_tenants

    settings = get_settings()
    tenants = args.tenant or [t.tenant_id for t in TenantRegistry(settings).list()]
    end = args.end or args.start + timedelta(days=1)
    for s in ingest_tenants(tenants, args.start, end, settings):
        print(json.dumps(s))
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from ml import features

    settings = get_settings()
    if args.features_cmd == "parse":
        print(features.build_manifest(settings))
        return 0
    ok = True
    for wh in features.warehouses(features.tenants_for(settings, args.tenant or None)):
        res = features.build_and_check_warehouse(wh, settings)
        ok &= not res.get("failed_nodes")
        failed = [f"{n['node']}: {n['message']}" for n in res.get("failed_nodes", [])]
        print(json.dumps({"warehouse": wh.key, "seconds": res.get("seconds"), "failed_nodes": failed,
                          "health": res.get("health")}, indent=1))  # fmt: skip
    return 0 if ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    """What the train DAG runs, in this process: snapshot, global models, per-tenant models."""
    from ml import snapshots, train
    from ml.features import tenants_for, warehouses

    settings = get_settings()
    tenants = tenants_for(settings, args.tenant or None)
    for wh in warehouses(tenants):
        snapshots.export_warehouse(wh, settings, [t.tenant_id for t in tenants] if args.tenant else None)
    results = []
    for kind in args.kind or MODEL_KINDS:
        if not args.tenant:
            results.append(train.train_global(kind, args.reason, settings, force=args.force))
        for t in tenants:
            results.append(train.train_tenant(kind, t.tenant_id, args.reason, settings, force=args.force))
    train.fairness(results, settings)
    for r in results:
        keep = ("tenant_id", "kind", "version", "trained_on", "promoted", "reason", "skipped", "metrics", "baseline_metrics")
        print(json.dumps({k: r[k] for k in keep if k in r}, default=str))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from ml.features import tenants_for, warehouses
    from ml.score import score_warehouse

    settings = get_settings()
    tenants = tenants_for(settings, args.tenant or None)
    for wh in warehouses(tenants):
        print(json.dumps(score_warehouse(wh, settings, args.tenant or None, k=args.k), default=str))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ml import registry

    settings = get_settings()
    if args.models_cmd == "list":
        tenants = TenantRegistry(settings).list()
        for tid in [registry.GLOBAL, *(t.tenant_id for t in tenants)]:
            for kind in MODEL_KINDS:
                d = registry.describe(kind, tid, settings)
                if d is None:
                    continue
                m = ", ".join(f"{k}={v:.3f}" for k, v in d["metrics"].items())
                print(f"{registry.model_name(kind, tid):<28} champion v{d['champion_version'] or '-':<4} "
                      f"challenger v{d['challenger_version'] or '-':<4} {d['trained_on'] or '-':<10} {m}")
    elif args.models_cmd == "show":
        print(json.dumps(registry.describe(args.kind, args.tenant_id, settings), indent=1, default=str))
    elif args.models_cmd == "promote":
        e = registry.promote(args.kind, args.tenant_id, args.version, args.reason, settings)
        print(f"{registry.model_name(args.kind, args.tenant_id)}: champion v{e.from_version} -> v{e.to_version} ({e.reason})")
    elif args.models_cmd == "rollback":
        e = registry.rollback(args.kind, args.tenant_id, args.reason, settings)
        print(f"{registry.model_name(args.kind, args.tenant_id)}: champion rolled back v{e.from_version} -> v{e.to_version}")
    elif args.models_cmd == "audit":
        for e in registry.audit_log(settings, args.tenant, args.kind):
            print(f"{e.at}  {e.actor:<40} {e.kind}.{e.tenant_id:<12} {e.action:<8} "
                  f"v{e.from_version or '-'} -> v{e.to_version or '-'}  {e.reason}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ml.status import format_table, status

    rows = status(get_settings(), args.tenant or None)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from ml.platform import shell_exports

    print(shell_exports(get_settings()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ml.demo import run_demo

    rows = run_demo(get_settings(), scale=args.scale)
    return 0 if rows else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from ml.serve import run

    settings = get_settings()
    port = args.port or settings.api_port
    print(f"Tenantflow API on http://{args.host}:{port}  (OpenAPI: /docs; keys: tenantflow tenants keys create TENANT)",
          flush=True)
    run(args.host, port, settings)
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    """Airflow (UI, scheduler, dag-processor, triggerer) and the MLflow UI under honcho."""
    from ml.platform import _bin, airflow_env, prepare_airflow

    settings = get_settings()
    prepare_airflow(settings)
    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **airflow_env(settings),
           "TENANTFLOW_AIRFLOW_PORT": str(settings.airflow_port), "TENANTFLOW_MLFLOW_PORT": str(settings.mlflow_port),
           "TENANTFLOW_MLFLOW_ARTIFACTS": str(settings.mlflow_artifacts), "TENANTFLOW_API_PORT": str(settings.api_port),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"),  # GenAI jobs: unused
           # the Procfile calls airflow and mlflow by name: this interpreter's venv comes first
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    print(f"Airflow UI: http://127.0.0.1:{settings.airflow_port}  login {settings.airflow_user} / {settings.airflow_password}")
    print(f"MLflow UI:  http://127.0.0.1:{settings.mlflow_port}")
    print(f"API:        http://127.0.0.1:{settings.api_port}/docs  (keys: tenantflow tenants keys create TENANT)")
    print("Ctrl-C stops everything.", flush=True)
    os.execve(_bin("honcho"), [_bin("honcho"), "-f", str(REPO_ROOT / "Procfile"), "-d", str(REPO_ROOT), "start"], env)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tenantflow", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("tenants", help="the tenant registry").add_subparsers(dest="tenants_cmd", required=True)
    add = t.add_parser("add", help="onboard a tenant (a registry row; no code or DAG change)")
    add.add_argument("tenant_id")
    add.add_argument("--region", required=True)
    add.add_argument("--isolation", choices=["pool", "silo"], default="pool")
    add.add_argument("--share-data", choices=["yes", "no"], default="yes")
    add.add_argument("--display-name")
    add.add_argument("--onboarded-at", type=_date)
    add.add_argument("--model-kinds", default=",".join(MODEL_KINDS))
    add.add_argument("--quota-events-per-day", type=int, default=5_000_000)
    add.add_argument("--quota-requests-per-minute", type=int, default=6_000)
    add.add_argument("--replace", action="store_true", help="overwrite an existing tenant")
    lst = t.add_parser("list")
    lst.add_argument("--json", action="store_true")
    t.add_parser("show").add_argument("tenant_id")
    t.add_parser("remove").add_argument("tenant_id")
    t.add_parser("seed", help="load tenants from a JSON/YAML list").add_argument("file")
    keys = t.add_parser("keys", help="API keys of a tenant for the serving API").add_subparsers(dest="keys_cmd", required=True)
    kc = keys.add_parser("create", help="print a new key once (only its hash is stored)")
    kc.add_argument("tenant_id")
    kc.add_argument("--label", help="what the key is for, e.g. 'web backend'")
    kr = keys.add_parser("revoke", help="end a key")
    kr.add_argument("tenant_id")
    kr.add_argument("key_id")
    keys.add_parser("list", help="key ids, labels, created and revoked times (never the keys)").add_argument(
        "tenant_id", nargs="?")
    ab = t.add_parser("ab", help="split a tenant's API traffic between champion and challenger")
    ab.add_argument("tenant_id")
    ab.add_argument("--kind", choices=MODEL_KINDS, default="recommender")
    ab.add_argument("--challenger-percent", type=float, required=True, help="0 ends the split")

    g = sub.add_parser("generate", help="write synthetic product events into landing/")
    g.add_argument("--demo", action="store_true", help="the demo's five tenants")
    g.add_argument("--tenants", type=int, default=5)
    g.add_argument("--users", type=int, default=2000, help="mean users per tenant")
    g.add_argument("--items", type=int, default=500, help="mean catalogue size per tenant")
    g.add_argument("--days", type=int, default=35)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--end-date", type=_date, default=None, help="last day (default: yesterday, UTC)")
    g.add_argument("--formats", default="csv,jsonl,parquet", help="landing formats, cycled over tenants")
    g.add_argument("--drift", action="append", default=[], metavar="TENANT:KIND:DAY",
                   help="inject drift (taste_shift, new_category, dwell_change) from day DAY")
    g.add_argument("--faults", action="append", default=[], metavar="TENANT[:KIND+KIND]",
                   help="inject faults into a tenant's drops (default: every kind)")
    g.add_argument("--land-days", metavar="FIRST:LAST",
                   help="write only the drops of days FIRST..LAST-1 of the window (0-based), e.g. to land "
                        "the days after a drift later, as if they had just arrived")
    g.add_argument("--register", action="store_true", help="also add the tenants to the registry")
    g.add_argument("--out", help="landing folder (default: $TENANTFLOW_HOME/landing)")

    i = sub.add_parser("ingest", help="ingest landing dates without Airflow (what the ingest DAG runs)")
    i.add_argument("--start", type=_date, required=True)
    i.add_argument("--end", type=_date, help="exclusive; default start + 1 day")
    i.add_argument("--tenant", action="append")

    f = sub.add_parser("features", help="dbt feature builds without Airflow").add_subparsers(dest="features_cmd", required=True)
    fb = f.add_parser("build")
    fb.add_argument("--tenant", action="append")
    f.add_parser("parse", help="dbt parse: write the manifest")

    tr = sub.add_parser("train", help="train and gate models without Airflow (what the train DAG runs)")
    tr.add_argument("--tenant", action="append", help="only these tenants (and no global model)")
    tr.add_argument("--kind", action="append", choices=MODEL_KINDS, help="default: every kind")
    tr.add_argument("--reason", default="manual")
    tr.add_argument("--force", action="store_true", help="retrain even if the data snapshot is unchanged")

    sc = sub.add_parser("score", help="batch-score users with the champions (what the score DAG runs)")
    sc.add_argument("--tenant", action="append")
    sc.add_argument("-k", type=int, default=10)

    m = sub.add_parser("models", help="the MLflow model registry: champions, promotion, rollback, audit")
    ms = m.add_subparsers(dest="models_cmd", required=True)
    ms.add_parser("list", help="champion and challenger of every registered model")
    show = ms.add_parser("show")
    show.add_argument("tenant_id")
    show.add_argument("kind", choices=MODEL_KINDS)
    pr = ms.add_parser("promote", help="make a version champion by hand (audited)")
    pr.add_argument("tenant_id")
    pr.add_argument("kind", choices=MODEL_KINDS)
    pr.add_argument("version")
    pr.add_argument("--reason", required=True, help="why; written to the audit log")
    rb = ms.add_parser("rollback", help="move champion back to the previous version (audited)")
    rb.add_argument("tenant_id")
    rb.add_argument("kind", choices=MODEL_KINDS)
    rb.add_argument("--reason", default="manual rollback")
    au = ms.add_parser("audit", help="promotions, refusals and rollbacks: who, what, when, why")
    au.add_argument("--tenant")
    au.add_argument("--kind", choices=MODEL_KINDS)

    mo = sub.add_parser("monitor", help="drift and decay checks, per-tenant policy, retrain requests")
    mos = mo.add_subparsers(dest="monitor_cmd", required=True)
    mr = mos.add_parser("run", help="check every tenant (or --tenant) now and print the verdicts (no retrain)")
    mr.add_argument("--tenant", action="append")
    mp = mos.add_parser("policy", help="show (or --set field=value) a tenant's monitoring policy")
    mp.add_argument("tenant_id")
    mp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    mq = mos.add_parser("requests", help="drift retrains requested by the monitor, and how they ended")
    mq.add_argument("--tenant")

    sv = sub.add_parser("serve", help="the serving API (FastAPI on uvicorn)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, help="default: TENANTFLOW_API_PORT (8000)")

    s = sub.add_parser("status", help="per-tenant status from the real stores")
    s.add_argument("--json", action="store_true")
    s.add_argument("--tenant", action="append")

    sub.add_parser("env", help='shell exports: eval "$(tenantflow env)"')
    d = sub.add_parser("demo", help="the end-to-end demo through real Airflow")
    d.add_argument("--scale", type=float, default=1.0, help="multiply the demo tenants' users and items")
    sub.add_parser("up", help="start the Airflow and MLflow UIs and Airflow's scheduler, dag-processor, triggerer")
    return p


COMMANDS = {
    "tenants": _cmd_tenants, "generate": _cmd_generate, "ingest": _cmd_ingest, "features": _cmd_features,
    "train": _cmd_train, "score": _cmd_score, "models": _cmd_models, "monitor": _cmd_monitor, "serve": _cmd_serve, "status": _cmd_status, "env": _cmd_env, "demo": _cmd_demo, "up": _cmd_up,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except (TenantError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
