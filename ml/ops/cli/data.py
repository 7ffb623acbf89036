"""``tenantflow generate | ingest | features``: the data plane without Airflow (what its DAGs run)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.settings import Settings, get_settings
from ml.core.tenant_seed import tenant_from_dict
from ml.core.tenants import TenantStore
from ml.ops.cli.progress import steps
from ml.ops.cli.summaries import print_import, print_ingest
from ml.ops.cli.tenant_options import option_date

features_app = typer.Typer(help="dbt feature builds without Airflow.", no_args_is_help=True)

Tenants = Annotated[list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable)")]


def _date(value: str | None) -> date | None:
    return None if value is None else option_date(value)


def _iso(value: str | None) -> str | None:
    day = _date(value)
    return day.isoformat() if day else None


def generate(
    demo: Annotated[bool, typer.Option("--demo", help="The demo's five tenants")] = False,
    tenants: Annotated[int, typer.Option(help="Tenants to generate")] = 5,
    users: Annotated[int, typer.Option(help="Mean users per tenant")] = 2000,
    items: Annotated[int, typer.Option(help="Mean catalogue size per tenant")] = 500,
    days: Annotated[int, typer.Option()] = 35,
    seed: Annotated[int, typer.Option()] = 42,
    end_date: Annotated[str | None, typer.Option(help="Last day (default: yesterday, UTC)")] = None,
    formats: Annotated[str, typer.Option(help="Landing formats, cycled over tenants")] = "csv,jsonl,parquet",
    drift: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TENANT:KIND:DAY", help="Inject drift (taste_shift, new_category, dwell_change) from day DAY"
        ),
    ] = None,
    faults: Annotated[
        list[str] | None,
        typer.Option(metavar="TENANT[:KIND+KIND]", help="Inject faults into a tenant's drops (default: every kind)"),
    ] = None,
    land_days: Annotated[
        str | None,
        typer.Option(metavar="FIRST:LAST", help="Write only the drops of days FIRST..LAST-1 of the window (0-based)"),
    ] = None,
    register: Annotated[
        bool, typer.Option("--register", help="Also onboard the tenants (their rows in the control database)")
    ] = False,
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            help="Generate for this tenant (repeatable; onboarded: its region from the registry) instead of "
            "--tenants new ones (t0001…)",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Landing folder (default: $TENANTFLOW_HOME/landing)")] = None,
) -> None:
    """Write synthetic product events into landing/."""
    from ml.data.generate import generate as run
    from ml.data.generate.config import Drift, Faults, demo_config, fleet_config

    settings = get_settings()
    if demo and tenant:
        raise typer.BadParameter("--demo writes the demo's own five tenants: leave out --tenant", param_hint="--tenant")
    if demo:
        config, rows = demo_config(end_date=_date(end_date), seed=seed)
    else:
        named = _generated_tenants(settings, tenant or [], register)
        config = fleet_config(tenants, users, items, days, seed, _date(end_date), formats.split(","), named=named)
        if named:
            _refuse_landed_days(settings, config)
        rows = [
            {"tenant_id": s.tenant_id, "region": s.region, "onboarded_at": config.start_date} for s in config.tenants
        ]
    drifts = [Drift(t, kind, int(day)) for t, kind, day in (d.split(":") for d in drift or [])]
    fault_specs = [
        Faults(f.split(":")[0], tuple(f.split(":")[1].split("+"))) if ":" in f else Faults(f) for f in faults or []
    ]
    land = tuple(int(x) for x in land_days.split(":")) if land_days else None
    config = replace(config, drifts=[*config.drifts, *drifts], faults=[*config.faults, *fault_specs], land_days=land)  # type: ignore[arg-type]
    if register:
        _register(settings, rows)
    target = out or settings.stores.landing.root
    t = time.perf_counter()
    with steps("generate", len(config.tenants)) as s:
        result = run(config, target, progress=lambda tid, n: s.advance(f"{tid} ({n:,} events)"))
    secs = time.perf_counter() - t
    print(
        f"wrote {result.events:,} events for {len(result.events_by_tenant)} tenants in {len(result.files)} files "
        f"under {target} ({config.start_date} .. {config.end_date}, seed {config.seed}) in {secs:.1f}s "
        f"({result.events / secs:,.0f} events/s)"
    )
    print(
        f"Next: tenantflow ingest --start {config.start_date} --end {config.end_date + timedelta(days=1)} "
        "(--end is exclusive; files are taken once unchanged for TENANTFLOW_LANDING_SETTLE_SECONDS, 5 s by default)"
    )


def _register(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Onboard the generated tenants that are not yet; an onboarded one keeps its entry (its settings and its
    consent to share data are its own, not the fleet's). Checked whole before any is stored: a fleet that puts an
    onboarded tenant in another region is refused (its events would land in the wrong region)."""
    store = TenantStore(settings)
    onboarded = {t.tenant_id: t for t in store.list()}
    for row in rows:
        tid, known = str(row["tenant_id"]), onboarded.get(str(row["tenant_id"]))
        if known is not None and known.region != row["region"]:
            raise TenantError(
                f"tenant {tid} is onboarded in region {known.region}, and the generated tenants put it in "
                f"{row['region']}: its events would land in the wrong region. Generate onboarded tenants by name "
                f"(--tenant {tid}, without --demo: each in its own region), or generate into a fresh home."
            )
        if known is None and store.removed(tid):
            raise TenantError(
                f"tenant id {tid} was removed and is never reused, and the generated tenants include it: generate "
                "tenants by name (--tenant ID), or into a fresh home."
            )
    for row in rows:
        if row["tenant_id"] not in onboarded:
            store.add(tenant_from_dict(row))


def _generated_tenants(settings: Settings, ids: list[str], register: bool) -> list[tuple[str, str]]:
    """(tenant id, region) of the tenants ``generate --tenant`` names: each onboarded (its region), or new with
    ``--register`` (regions eu, us in turn; a tenant with a source spec of its own too: generated files follow the
    landing contract, which its files are read as where its spec does not fit them). Raises
    :class:`typer.BadParameter` naming a tenant that is not onboarded (without ``--register``) or was removed."""
    store, out = TenantStore(settings), []
    known = {t.tenant_id: t for t in store.list()}
    for i, tid in enumerate(dict.fromkeys(ids)):
        validate_slug(tid)  # (TenantError: what an id may be)
        if tid not in known and store.removed(tid):
            msg = f"tenant {tid!r} was removed, and a removed id is never reused: name another"
            raise typer.BadParameter(msg, param_hint="--tenant")
        if tid not in known and not register:
            raise typer.BadParameter(
                f"tenant {tid!r} is not onboarded: `tenantflow tenants add {tid} --region eu` first, or pass "
                "--register to onboard it here",
                param_hint="--tenant",
            )
        out.append((tid, known[tid].region if tid in known else ("eu", "us")[i % 2]))
    return out


def _refuse_landed_days(settings: Settings, config: Any) -> None:
    """Raise :class:`typer.BadParameter` when a tenant named with ``generate --tenant`` already has landing files on
    a day of ``config``'s window: generated files would land beside (or over) them."""
    landing = settings.stores.landing
    for spec in config.tenants:
        taken = [
            d
            for d in landing.days(spec.region, spec.tenant_id)
            if config.start_date <= d <= config.end_date
            and any(landing.day_dir(spec.region, spec.tenant_id, d).iterdir())
        ]
        if taken:
            raise typer.BadParameter(
                f"tenant {spec.tenant_id!r} already has landing files on {len(taken)} day(s) of {config.start_date} .. "
                f"{config.end_date} (first {taken[0]}): generated files would land beside or over them; choose other "
                "days (--end-date, --days) or move those folders",
                param_hint="--tenant",
            )


def ingest(
    start: Annotated[str, typer.Option(help="First landing date, e.g. 2026-11-20")],
    end: Annotated[str | None, typer.Option(help="Exclusive; default start + 1 day")] = None,
    tenant: Tenants = None,
    current_spec: Annotated[
        bool,
        typer.Option(
            "--current-spec",
            help="Read every file of these days with the current source spec (of every tenant asked, all by default), "
            "for files an earlier spec read without an error but wrongly (a timezone, a mapping); by default a file "
            "is read with the spec it was first read with (a file it could not read, with the current one)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON summary per tenant instead of the table")] = False,
) -> None:
    """Ingest landing dates without Airflow (what the ingest DAG runs): a table of what each tenant's days held."""
    from ml.data.ingest.run import ingest_tenants

    settings = get_settings()
    first = _date(start)
    assert first is not None
    ids = tenant or [t.tenant_id for t in TenantStore(settings).list()]
    summaries: list[dict[str, Any]] = []
    with steps("ingest", len(ids)) as s:

        def done(summary: dict[str, Any]) -> None:
            summaries.append(summary)
            n = len(summary["waiting_files"])
            waiting = f", {n} day{'s' if n > 1 else ''} waiting" if n else ""
            s.advance(f"{summary['tenant_id']} ({summary['landed']:,} landed{waiting})")

        last = _date(end) or first + timedelta(days=1)
        ingest_tenants(ids, first, last, settings, progress=done, current_spec=current_spec)
    if as_json:
        for summary in summaries:
            print(json.dumps(summary))
    else:
        print_ingest(summaries)
    settle = settings.landing.settle_seconds
    for summary in (s for s in summaries if s["waiting_files"]):
        typer.secho(
            f"{summary['tenant_id']}: files of {len(summary['waiting_files'])} day(s) were still being written (changed "
            f"within {settle:g} s, TENANTFLOW_LANDING_SETTLE_SECONDS) and wait: run the same ingest again once they "
            f"settle (first: {summary['waiting_files'][0]})",
            fg="yellow",
            err=True,
        )


def import_history(
    tenant: Annotated[str, typer.Argument(help="The tenant whose history this is")],
    paths: Annotated[list[Path], typer.Argument(help="Files of its export (any format its source spec reads)")],
    as_json: Annotated[bool, typer.Option("--json", help="The summary as JSON")] = False,
) -> None:
    """Import a tenant's history: land every event into the date partition of its event time.

    The files are read with the tenant's source spec and ingested as landing dates (the same
    checks and quarantine as live drops, without the 7-day lateness rule). Importing the same
    files again does nothing.
    """
    from ml.core.ids import validate_slug
    from ml.data.ingest.history import import_history as run_import

    settings = get_settings()
    t = TenantStore(settings).get(validate_slug(tenant))
    started = time.perf_counter()
    try:
        # a step per file read, then one for ingesting the dates they fill ("ingested N dates")
        with steps(f"import {t.tenant_id}", len(paths) + 1) as s:
            result = run_import(settings, t, paths, progress=s.advance)
    except FileNotFoundError as exc:
        raise TenantError(str(exc)) from None
    summary = result.summary() | {"seconds": round(time.perf_counter() - started, 1)}
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    from ml.data.feature_checks import read_health

    print_import(summary, has_features=read_health(settings, t.tenant_id) is not None)


@features_app.command("build")
def features_build(
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            help="Build the warehouse file of this tenant (repeatable): every tenant in that file is built with it",
        ),
    ] = None,
    rebuild_from: Annotated[
        str | None,
        typer.Option(help="Recompute daily activity from this date (after importing older history), e.g. 2025-06-01"),
    ] = None,
) -> None:
    """dbt build, GX checks and publishing, for each warehouse file of these tenants (default: all).

    A shared (pool) file is built for all its tenants: its marts are rebuilt whole. Exits 1 when a
    tenant asked for (``--tenant``; default: every tenant with lake data) is held back (unhealthy, not
    published, the API still serving its last good snapshot) or a dbt node other than a data test failed
    (a seed, a snapshot, a model). A pool's other tenants held back by a data test are reported, and do not
    change the exit code.
    """
    from ml.core.warehouse import warehouses_holding
    from ml.data.features import build_and_check_warehouse, still_served
    from ml.models.kinds import online_marts

    settings = get_settings()
    store = TenantStore(settings)
    whs = warehouses_holding(store.select(tenant), store.list())
    held_back: dict[str, dict[str, Any]] = {}
    failed_other = False  # a failed seed, snapshot or model: not only a data test that names its tenants
    with steps("features", len(whs)) as s:
        for wh in whs:
            with contextlib.redirect_stdout(sys.stderr):  # dbt's log (a task log's stdout): stdout is the JSON
                res = build_and_check_warehouse(wh, online_marts(), settings, rebuild_from=_iso(rebuild_from))
            held_back |= res.get("held_back", {})
            failed_other |= any(not n["node"].startswith("test.") for n in res.get("failed_nodes", []))
            s.advance(f"{wh.key} ({res.get('seconds')} s)")
            failed = [f"{n['node']}: {n['message']}" for n in res.get("failed_nodes", [])]
            summary = {"warehouse": wh.key, "seconds": res.get("seconds"), "failed_nodes": failed}
            summary |= {"published": res.get("published", {}), "held_back": res.get("held_back", {})}
            summary |= {"cross_tenant": res.get("cross_tenant")}  # aggregates rebuilt without the held-back tenants
            print(json.dumps({**summary, "health": res.get("health")}, indent=1))
    for t, h in held_back.items():
        typer.secho(f"held back: {t}: {'; '.join(h['health_problems'])}; {still_served(h)}", fg="red", err=True)
    if failed_other or any(tenant is None or t in tenant for t in held_back):
        raise typer.Exit(1)


@features_app.command("docs")
def features_docs(
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="The warehouse file of this tenant (repeatable)")
    ] = None,
    serve: Annotated[bool, typer.Option(help="Serve the pages on 127.0.0.1 until Ctrl-C")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve")] = 8081,
) -> None:
    """dbt docs of each warehouse of these tenants (default: all): lineage to the exposures, catalog as built."""
    from ml.core.warehouse import warehouses_holding
    from ml.data.dbt import generate_docs

    settings = get_settings()
    store = TenantStore(settings)
    pages = []
    with steps("dbt docs", len(whs := warehouses_holding(store.select(tenant), store.list()))) as s:
        for wh in whs:
            pages.append(generate_docs(settings, wh))
            s.advance(wh.key)
    for page in pages:
        print(page)
    if serve and pages:
        _serve(pages[0].parent.parent, port)


def _serve(root: Path, port: int) -> None:
    """Serve ``root`` (one folder per warehouse) on 127.0.0.1 until interrupted."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            print(f"dbt docs of {d.name.replace('__', '/')}: http://127.0.0.1:{port}/{d.name}/static_index.html")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


@features_app.command("parse")
def features_parse() -> None:
    """dbt parse: write the manifest."""
    from ml.data.dbt import build_manifest

    print(build_manifest(get_settings()))


def register(app: typer.Typer) -> None:
    app.command(help="Write synthetic product events into landing/.")(generate)
    app.command(help="Ingest landing dates without Airflow (what the ingest DAG runs).")(ingest)
    app.command("import", help="Import a tenant's history files into date partitions by event time.")(import_history)
    app.add_typer(features_app, name="features")
