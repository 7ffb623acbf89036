"""``tenantflow tenants``: onboarding (a row, never code), API keys, and traffic splits."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ml.core.contract import INTERACTION_EVENT_TYPES, POSITIVE_EVENT_TYPES
from ml.core.settings import get_settings
from ml.core.tenant_fields import names, parse_bool
from ml.core.tenants import (
    DEFAULT_QUOTA_EVENTS_PER_DAY,
    DEFAULT_QUOTA_REQUESTS_PER_MINUTE,
    Tenant,
    TenantStore,
    tenant_from_dict,
)
from ml.data.ingest.spec import load_spec_file
from ml.models.kinds import validate_kinds
from ml.ops.cli.progress import out

app = typer.Typer(help="The tenants: onboard, list, show, remove; API keys; A/B traffic splits.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of a tenant for the serving API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _kinds(value: str) -> tuple[str, ...]:
    return validate_kinds([k for k in value.split(",") if k])


# The options of `tenants add` whose help is long (Typer reads the help from the annotation)
SeenItems = Annotated[
    str, typer.Option(help="exclude: never recommend what a user consumed (content); allow: repeats (retail, music)")
]
LabelWindow = Annotated[
    int | None, typer.Option(help="Days of interactions that judge recommendations; default: from its activity cadence")
]
ChurnWindow = Annotated[
    int | None,
    typer.Option(help="Days after which a user not seen (or who cancelled) has churned; default: from its cadence"),
]
FeatureWindow = Annotated[
    int | None,
    typer.Option(
        help="Days before a cutoff the long features count, 14..364 (the short ones: a quarter of it); default: "
        "from its cadence (28 for a daily platform)"
    ),
]
HoldoutProtocol = Annotated[
    str,
    typer.Option(
        help="Which holdout chooses its recommender: temporal (what users take next), random (a random quarter "
        "of each user's items, the recommenders benchmark's protocol), auto (temporal where it judges enough users)"
    ),
]
GlobalRegion = Annotated[
    str | None,
    typer.Option(
        help="Opt in to another region's global model (its parameters reach this tenant's models; "
        "this tenant's data stays in its region); default: its own region's"
    ),
]
MinRating = Annotated[
    float | None,
    typer.Option(
        help="The lowest rating that is a positive interaction; a lower one is consumed (never recommended back "
        "under --seen-items exclude) but not learnt from or judged on; default: every rating"
    ),
]
InteractionTypes = Annotated[
    str,
    typer.Option(
        help=f"Comma-separated event types that are its positive interactions, of {','.join(POSITIVE_EVENT_TYPES)} "
        f"(e.g. view for a news site); default: {','.join(INTERACTION_EVENT_TYPES)}"
    ),
]


@app.command()
def add(
    tenant_id: str,
    region: Annotated[str, typer.Option(help="Data residency: where its data is stored and processed")],
    isolation: Annotated[str, typer.Option(help="pool (a region's shared warehouse) or silo (its own file)")] = "pool",
    share_data: Annotated[str, typer.Option(help="yes: its data may train the global model")] = "yes",
    display_name: Annotated[str | None, typer.Option()] = None,
    onboarded_at: Annotated[str | None, typer.Option(help="A date like 2026-11-20 (default: today)")] = None,
    model_kinds: Annotated[str, typer.Option(help="Comma-separated kinds; empty: every registered kind")] = "",
    quota_events_per_day: Annotated[int, typer.Option()] = DEFAULT_QUOTA_EVENTS_PER_DAY,
    quota_requests_per_minute: Annotated[int, typer.Option()] = DEFAULT_QUOTA_REQUESTS_PER_MINUTE,
    seen_items: SeenItems = "exclude",
    label_window_days: LabelWindow = None,
    churn_window_days: ChurnWindow = None,
    feature_window_days: FeatureWindow = None,
    holdout_protocol: HoldoutProtocol = "auto",
    global_region: GlobalRegion = None,
    min_rating: MinRating = None,
    interaction_types: InteractionTypes = "",
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing tenant")] = False,
) -> None:
    """Onboard a tenant (a row in the control database; no code or DAG change)."""
    store = TenantStore()
    before = next((t for t in store.list() if t.tenant_id == tenant_id), None) if replace else None
    tenant = Tenant(
        tenant_id=tenant_id,
        region=region,
        isolation=isolation,
        share_data=parse_bool(share_data),
        display_name=display_name or tenant_id,
        onboarded_at=_date(onboarded_at) if onboarded_at else date.today(),
        model_kinds=_kinds(model_kinds),
        quota_events_per_day=quota_events_per_day,
        quota_requests_per_minute=quota_requests_per_minute,
        seen_items=seen_items,
        label_window_days=label_window_days,
        churn_window_days=churn_window_days,
        feature_window_days=feature_window_days,
        holdout_protocol=holdout_protocol,
        global_region=global_region,
        min_rating=min_rating,
        interaction_types=names(interaction_types, "interaction_types"),
    )
    store.add(tenant, replace=replace)
    print(
        f"onboarded {tenant.tenant_id} in region {tenant.region} ({tenant.isolation}); "
        f"its warehouse: {tenant.warehouse_key}. The next DAG runs pick it up."
    )
    _say_rule_change(before, tenant)


def _rating(t: Tenant) -> str:
    return "any" if t.min_rating is None else repr(t.min_rating)


def _types(t: Tenant) -> str:
    """The tenant's interaction types, and whether they are its own or the platform's."""
    return ",".join(t.interactions) + ("" if t.interaction_types else " (default)")


def _say_rule_change(before: Tenant | None, tenant: Tenant) -> None:
    """What a changed interaction rule (``min_rating``, ``interaction_types``) of a tenant that was
    there takes effect in, and what it does not yet."""
    if before is None:
        return
    changes = [
        f"{name} changed ({show(before)} -> {show(tenant)})"
        for name, show, changed in (
            ("min_rating", _rating, before.min_rating != tenant.min_rating),
            ("interaction_types", _types, before.interactions != tenant.interactions),
        )
        if changed
    ]
    if changes:
        print(
            f"{tenant.tenant_id}: {'; '.join(changes)}: the next feature build counts the tenant's whole history "
            "again by the new rule (its daily activity included), and makes its models due"
        )


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected a date like 2026-11-20, got {value!r}") from None


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="The rows as JSON")] = False) -> None:
    """Every tenant."""
    tenants = TenantStore().list()
    if as_json:
        print(json.dumps([t.to_json() for t in tenants], indent=1))
        return
    table = Table(
        "tenant",
        "region",
        "tier",
        "share data",
        "global model",
        "onboarded",
        "model kinds",
        "seen items",
        "holdout",
        "windows (label/churn/feature days)",
        "min rating",
        "interactions",
        "name",
    )
    for t in tenants:
        # a window's setting, or "cadence": derived from the tenant's activity (int_tenant_windows)
        windows = "/".join(
            str(d) if d is not None else "cadence"
            for d in (t.label_window_days, t.churn_window_days, t.feature_window_days)
        )
        kinds = ",".join(t.model_kinds) or "all"
        table.add_row(
            t.tenant_id,
            t.region,
            t.isolation,
            "yes" if t.share_data else "no",
            t.global_model_region + (" (opted in)" if t.global_model_region != t.region else ""),
            str(t.onboarded_at),
            kinds,
            t.seen_items,
            t.holdout_protocol,
            windows,
            _rating(t),
            ",".join(t.interaction_types) or "default",
            t.display_name,
        )
    out.print(table)


@app.command()
def show(tenant_id: str) -> None:
    """One tenant's row and its source spec (null: the landing contract as is), as JSON."""
    store = TenantStore()
    row = store.get(tenant_id).to_json()
    row["source_spec"] = store.source_spec(tenant_id)
    print(json.dumps(row, indent=1))


@app.command()
def source(
    tenant_id: str,
    file: Annotated[Path | None, typer.Option("--file", help="A YAML or JSON source spec")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the spec: read the landing contract as is")] = False,
) -> None:
    """Set how a tenant's exports map onto the landing contract (a source spec: data, never code).

    The spec is checked whole before it is stored; ``tenants show`` prints it. See the README's
    "Sending data: the landing contract" for the fields and a worked example.
    """
    store = TenantStore()
    if clear == (file is not None):
        raise typer.BadParameter("give either --file SPEC or --clear")
    if file is None:
        store.set_source_spec(tenant_id, None)
        print(
            f"tenant {tenant_id}: source spec cleared: files that arrive from now on are read as the landing contract "
            "(files landed before keep the spec they were read with)"
        )
        return
    spec = load_spec_file(file)
    store.set_source_spec(tenant_id, spec.model_dump(mode="json", exclude_defaults=True))
    print(
        f"tenant {tenant_id}: source spec from {file} stored; files that arrive from now on are read with it (files "
        "landed before keep the spec they were read with: `tenantflow ingest --current-spec` reads them with this one; "
        "a file in the landing contract is read as the contract wherever this spec does not fit it)"
    )


@app.command()
def remove(
    tenant_id: str,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge", help="Also delete its data, models and aliases everywhere (also for an id removed before)"
        ),
    ] = False,
) -> None:
    """Remove a tenant: its keys die and its id is never reused; with --purge, its data and models go too."""
    if not purge:
        TenantStore().remove(tenant_id)
        print(
            f"removed tenant {tenant_id}: its API keys are revoked and its id is retired; its data and models are "
            f"kept until `tenantflow tenants remove {tenant_id} --purge`."
        )
        return
    from ml.ops.erasure import purge_tenant

    r = purge_tenant(tenant_id)
    rows = sum(r["warehouse"].get("rows", {}).values())
    print(
        f"purged tenant {tenant_id}: {len(r['folders'])} folders, {rows:,} warehouse rows"
        f"{' and its silo file' if r['warehouse'].get('files') else ''}, {r['ledger_rows']:,} webhook ledger rows, "
        f"{len(r['models'])} registered models, {len(r['runs'])} MLflow runs deleted for good"
        + (
            f"; {r['global_models_marked']} models will retrain (reason erasure)"
            if r.get("global_models_marked")
            else ""
        )
    )


@app.command("erase-user")
def erase_user(tenant_id: str, user_id: str) -> None:
    """Erase one end user of a tenant from every store (GDPR art. 17): landing, lake, quarantine,
    warehouse, snapshots, published features, prediction log, webhook ledger; its models retrain."""
    from ml.ops.user_erasure import erase_user as erase

    r = erase(tenant_id, user_id)
    if not r["found"]:
        print(
            f"no data of that user id was found in tenant {tenant_id}'s stores (tombstone {r['user_hash'][:12]}): "
            "give the id as the lake and the API show it (after the source spec's mapping). Rows of this id "
            "sent from now on are dropped at ingestion; no model retrains."
        )
        return
    rows = sum(r["warehouse"].values())
    print(
        f"erased a user of {tenant_id} (tombstone {r['user_hash'][:12]}): {len(r['landing_files'])} landing files "
        f"rewritten or removed, {len(r['lake_days'])} lake days rebuilt, {len(r['removed_days'])} days removed (they "
        f"held this user's rows only), "
        + (f"{n} lake days filtered (a landed file deleted by hand), " if (n := len(r["filtered_days"])) else "")
        + f"{rows:,} warehouse rows, {r['snapshot_rows']:,} "
        f"snapshot rows, {r['published_rows']:,} published rows, {r['prediction_log_records']:,} prediction-log "
        f"records, {r['ledger_rows']:,} webhook ledger rows deleted; models of {', '.join(r['models_marked'])} "
        "will retrain (reason erasure). Rows and malformed lines of this user sent again are dropped at ingestion."
    )


@app.command()
def seed(file: Path) -> None:
    """Load tenants from a JSON or YAML list, replacing existing rows (a bad entry stores none)."""
    store = TenantStore()
    before = {t.tenant_id: t for t in store.list()}
    for t in store.seed_from_file(file, check=lambda t: validate_kinds(t.model_kinds)):
        print(f"onboarded {t.tenant_id} in region {t.region} ({t.isolation})")
        _say_rule_change(before.get(t.tenant_id), t)


@app.command()
def ab(
    tenant_id: str,
    challenger_percent: Annotated[float, typer.Option(help="0 ends the split")],
    kind: Annotated[str, typer.Option(help="The model kind whose traffic is split")] = "recommender",
) -> None:
    """Split a tenant's API traffic between champion and challenger."""
    from ml.serving.traffic import set_traffic_split

    set_traffic_split(tenant_id, kind, challenger_percent, get_settings())
    print(
        f"tenant {tenant_id}: {challenger_percent:g}% of users get the {kind} challenger "
        "(by a stable hash of the user id); the API picks it up within a second"
    )


@keys_app.command("create")
def keys_create(
    tenant_id: str, label: Annotated[str, typer.Option(help="What the key is for, e.g. 'web backend'")] = ""
) -> None:
    """Print a new key once (only its hash is stored)."""
    from ml.serving import keys

    settings = get_settings()
    record, plain = keys.create_key(tenant_id, label, settings)
    print(f"API key {record.key_id} for tenant {record.tenant_id} (shown once; only its hash is stored):")
    print(plain)
    wait = settings.serve.watch_seconds
    typer.echo(f"A running API accepts it within {wait:g} s (it re-reads keys that often).", err=True)


@keys_app.command("revoke")
def keys_revoke(tenant_id: str, key_id: str) -> None:
    """End a key."""
    from ml.serving import keys

    record = keys.revoke_key(tenant_id, key_id, get_settings())
    print(
        f"revoked key {record.key_id} of tenant {record.tenant_id} at {record.revoked_at}; a running API "
        "refuses it within a second"
    )


@keys_app.command("list")
def keys_list(tenant_id: Annotated[str | None, typer.Argument()] = None) -> None:
    """Key ids, labels, created and revoked times (never the keys)."""
    from ml.serving import keys

    print(json.dumps([k.public() for k in keys.list_keys(tenant_id, get_settings())], indent=1))


def tenant_rows(rows: list[dict[str, object]]) -> list[Tenant]:
    """Tenant rows (the generator's ``--register``) as tenants."""
    return [tenant_from_dict(r) for r in rows]
