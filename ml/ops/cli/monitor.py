"""``tenantflow monitor``: drift and decay checks now, per-tenant policy, retrain requests."""

from __future__ import annotations

import json
import textwrap
from typing import Annotated

import typer

from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.ops.cli.progress import out

app = typer.Typer(help="Drift and decay checks, per-tenant policy, retrain requests.", no_args_is_help=True)


@app.command()
def run(
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable)")] = None,
) -> None:
    """Check every tenant (or --tenant) now and print the verdicts (no retrain).

    A warehouse that cannot be opened (a silo tenant's key that does not answer, a writer holding the file) is named
    with why, the others are checked, and the command exits 1.
    """
    import duckdb

    from ml.core.warehouse import WarehouseKeyError, warehouses
    from ml.monitoring.run import monitor_warehouse

    settings = get_settings()
    unchecked = []
    for wh in warehouses(TenantStore(settings).select(tenant)):
        try:
            verdicts = monitor_warehouse(wh, settings, tenants=tenant or None)
        except (WarehouseKeyError, duckdb.Error) as exc:  # one warehouse's problem: the others are still checked
            unchecked.append(f"{wh.key}: {type(exc).__name__}: {exc}")
            verdicts = {"warehouse": wh.key, "tenants": {}, "error": unchecked[-1]}
        print(json.dumps(verdicts, indent=1, default=str))
    for why in unchecked:
        typer.secho(f"not checked: {why}", fg="red", err=True)
    if unchecked:
        raise typer.Exit(1)


@app.command()
def policy(
    tenant_id: str,
    set_: Annotated[
        list[str] | None, typer.Option("--set", metavar="FIELD=VALUE", help="Override a field (repeatable)")
    ] = None,
) -> None:
    """Show (or --set field=value) a tenant's monitoring policy."""
    from ml.monitoring import policy as policies

    settings = get_settings()
    TenantStore(settings).get(tenant_id)  # an unknown tenant is an error, not defaults
    changes = dict(kv.split("=", 1) for kv in set_ or [])
    effective = (
        policies.set_tenant_policy(tenant_id, changes, settings)
        if changes
        else policies.for_tenant(tenant_id, settings)
    )
    print(
        json.dumps(
            {
                "tenant_id": tenant_id,
                "policy": effective.model_dump(),
                "overrides": policies.tenant_overrides(tenant_id, settings),
            },
            indent=1,
        )
    )


@app.command()
def requests(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The rows as JSON")] = False,
) -> None:
    """Drift retrains requested by the monitor, oldest first, and how they ended: the train run each started,
    why, its drift reports."""
    from ml.monitoring.decisions import retrain_history

    rows = retrain_history(tenant, get_settings())
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    if not rows:
        print("no drift retrain requested" + (f" for {tenant}" if tenant else "") + " yet")
        return
    width = out.width  # a terminal's, 200 off one (as the tables)

    def block(label: str, text: str) -> None:  # wrapped at words under its label; a path or id stays whole
        print(textwrap.fill(text, width, initial_indent=f"  {label}: ", subsequent_indent="      ",
                            break_long_words=False, break_on_hyphens=False))  # fmt: skip

    for r in rows:  # a block per request: its long lines (reasons, paths) read at any terminal width
        ended = f"{r['status']} {r['closed_at'][:16]} UTC" if r["closed_at"] else "open: its train run has not ended"
        print(f"{r['tenant_id']}: requested {r['requested_at'][:16]} UTC for {', '.join(r['kinds'])}; {ended}")
        if r["outcome"]:
            block("outcome", r["outcome"])
        print(f"  train run: {r['train_run_id'] or '-'}")
        block("reason", r["reason"] or "-")
        for path in r["report_paths"]:
            print(f"  drift report: {path}")
