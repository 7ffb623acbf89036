"""``tenantflow tenants``: onboarding (a row, never code), API keys, and traffic splits."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from ml.core.errors import TenantError
from ml.core.settings import get_settings
from ml.core.tenant_fields import names, parse_bool, refuse_moving
from ml.core.tenant_seed import seed_from_file
from ml.core.tenants import (
    DEFAULT_QUOTA_EVENTS_PER_DAY,
    DEFAULT_QUOTA_REQUESTS_PER_MINUTE,
    Tenant,
    TenantStore,
    changed_fields,
)
from ml.data.ingest.spec import load_spec_file
from ml.models.kinds import kinds_of, validate_kinds
from ml.models.kinds._windows import unset_windows_note
from ml.ops.cli.progress import out
from ml.ops.cli.tenant_keys import keys_app
from ml.ops.cli.tenant_options import (
    UNSETTABLE,
    ChurnWindow,
    FeatureWindow,
    GlobalRegion,
    HoldoutProtocol,
    InteractionTypes,
    LabelWindow,
    MinRating,
    SeenItems,
    Unset,
    option_date,
)
from ml.ops.tables import folding_table

app = typer.Typer(help="The tenants: onboard, list, show, remove; API keys; A/B traffic splits.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _kinds(value: str) -> tuple[str, ...]:
    return validate_kinds([k for k in value.split(",") if k])


RULE = ("min_rating", "interaction_types")  # which events are positive: a change recounts the tenant's history


@app.command()
def add(
    tenant_id: str,
    region: Annotated[
        str | None, typer.Option(help="Data residency: where its data is stored and processed (required; fixed)")
    ] = None,
    isolation: Annotated[
        str | None, typer.Option(help="pool (a region's shared warehouse; the default) or silo (its own file); fixed")
    ] = None,
    share_data: Annotated[
        str | None, typer.Option(help="yes (the default): its data may train the global model")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Default: the tenant id")] = None,
    onboarded_at: Annotated[str | None, typer.Option(help="A date like 2026-11-20 (default: today)")] = None,
    model_kinds: Annotated[
        str | None, typer.Option(help="Comma-separated kinds; default: every registered kind")
    ] = None,
    quota_events_per_day: Annotated[int | None, typer.Option(help=f"Default {DEFAULT_QUOTA_EVENTS_PER_DAY}")] = None,
    quota_requests_per_minute: Annotated[
        int | None, typer.Option(help=f"Default {DEFAULT_QUOTA_REQUESTS_PER_MINUTE}")
    ] = None,
    seen_items: SeenItems = None,
    label_window_days: LabelWindow = None,
    churn_window_days: ChurnWindow = None,
    feature_window_days: FeatureWindow = None,
    holdout_protocol: HoldoutProtocol = None,
    global_region: GlobalRegion = None,
    min_rating: MinRating = None,
    interaction_types: InteractionTypes = None,
    unset: Unset = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Change an existing tenant: the options given; every other field kept")
    ] = False,
) -> None:
    """Onboard a tenant (a row in the control database; no code or DAG change), or change one with --replace."""
    given = {
        "region": region,
        "isolation": isolation,
        "share_data": None if share_data is None else parse_bool(share_data),
        "display_name": display_name or (tenant_id if display_name == "" else None),
        "onboarded_at": None if onboarded_at is None else option_date(onboarded_at),
        "model_kinds": None if model_kinds is None else _kinds(model_kinds),
        "quota_events_per_day": quota_events_per_day,
        "quota_requests_per_minute": quota_requests_per_minute,
        "seen_items": seen_items,
        "label_window_days": label_window_days,
        "churn_window_days": churn_window_days,
        "feature_window_days": feature_window_days,
        "holdout_protocol": holdout_protocol,
        "global_region": global_region,
        "min_rating": min_rating,
        "interaction_types": None if interaction_types is None else names(interaction_types, "interaction_types"),
    }
    store = TenantStore()
    before, known = next((t for t in store.list() if t.tenant_id == tenant_id), None), store.regions()
    if (before is None) == replace:  # (a misspelt id with --replace would onboard a new tenant)
        raise TenantError(
            f"tenant {tenant_id} is not onboarded: --replace changes an existing tenant (`tenantflow tenants list`); "
            "leave it out to onboard a new one."
            if replace
            else f"tenant {tenant_id} already exists; add --replace to change the options given (the rest kept)."
        )
    unset = [f for value in unset or [] for f in value.split(",") if f]
    try:
        tenant = _entry(tenant_id, before, {k: v for k, v in given.items() if v is not None}, unset)
        store.add(tenant, replace=replace, expect=before)
    except TenantError as exc:
        raise _with_options(exc, [k for k, v in given.items() if v is not None]) from None
    if before is None:
        print(
            f"onboarded {tenant.tenant_id} in region {tenant.region} ({tenant.isolation}); "
            f"its warehouse: {tenant.warehouse_key}. The next DAG runs pick it up." + _new_region(tenant, known)
        )
    _say_changes(before, tenant)


def _new_region(tenant: Tenant, known: set[str]) -> str:
    """A note when the tenant is the first ever in its region (a misspelt region would keep its data apart
    unseen); ``known``: the regions of every tenant, present or removed, before it (the region is added)."""
    note = ""
    if known and tenant.region not in known:
        note = f" Region {tenant.region} is new (so far: {', '.join(sorted(known))})."
    known.add(tenant.region)
    return note


def _with_options(exc: TenantError, fields: list[str]) -> TenantError:
    """A check's message names fields (a seed file's words): it gets the options given that it names (``--min-rating``)."""
    text = str(exc)
    named = [f"--{f.replace('_', '-')}" for f in fields if re.search(rf"\b{f}\b", text)]
    return TenantError(f"{text} On the command line: {', '.join(named)}.") if named and "--" not in text else exc


def _entry(tenant_id: str, before: Tenant | None, given: dict[str, Any], unset: list[str]) -> Tenant:
    """The tenant's entry: a new one from ``given`` (the options on the command line), or ``before`` with
    ``given`` and the ``unset`` fields' defaults (every other field kept as it was)."""
    if wrong := sorted(set(unset) - set(UNSETTABLE)):
        raise TenantError(f"tenant {tenant_id}: --unset takes {', '.join(UNSETTABLE)}; got {', '.join(wrong)}.")
    if before is None:
        if unset:
            raise TenantError(f"tenant {tenant_id} is not onboarded: --unset changes an existing tenant's fields.")
        if "region" not in given:
            raise TenantError(f"tenant {tenant_id}: --region is required: where its data is stored and processed.")
        return Tenant(tenant_id=tenant_id, **{"display_name": tenant_id, **given})
    if both := sorted(set(unset) & set(given)):
        raise TenantError(f"tenant {tenant_id}: {', '.join(both)} both given and --unset; choose one.")
    where = (before.region, before.isolation)
    refuse_moving(tenant_id, where, (given.get("region", where[0]), given.get("isolation", where[1])))
    defaults: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Tenant) if f.name in unset}
    return dataclasses.replace(before, **defaults, **given)


def _suspended(t: Tenant) -> str:
    """What a quota of 0 suspends: `` (webhook suspended)``, `` (API suspended)``, both, or nothing."""
    return f" ({' and '.join(t.suspended)} suspended)" if t.suspended else ""


def _rating(t: Tenant) -> str:
    return "any" if t.min_rating is None else repr(t.min_rating)


def _types(t: Tenant) -> str:
    """The tenant's interaction types, and whether they are its own or the platform's."""
    return ",".join(t.interactions) + ("" if t.interaction_types else " (default)")


def _say_changes(before: Tenant | None, tenant: Tenant) -> None:
    """Every field a change of a tenant that was there moved (as the audit log records it), and what a
    changed interaction rule (``min_rating``, ``interaction_types``) takes effect in."""
    if before is None:
        return
    changed = changed_fields(before, tenant)
    moved = [f"{k} ({_text(was)} -> {_text(now)})" for k, (was, now) in changed.items() if k not in RULE]
    if moved:
        print(f"{tenant.tenant_id}: changed {', '.join(moved)}")
    elif not changed:
        print(f"{tenant.tenant_id}: unchanged")
    changes = [
        f"{name} changed ({show(before)} -> {show(tenant)})"
        for name, show, differs in (
            ("min_rating", _rating, before.min_rating != tenant.min_rating),
            ("interaction_types", _types, before.interactions != tenant.interactions),
        )
        if differs
    ]
    if changes:
        print(
            f"{tenant.tenant_id}: {'; '.join(changes)}: the next feature build (the features DAG's next run, or "
            f"`tenantflow features build --tenant {tenant.tenant_id}`) counts the tenant's whole history again by the "
            "new rule (its daily activity included), and makes its models due"
        )


def _text(value: object) -> str:
    """A field's value as ``tenants add`` takes it: a list comma-separated, none as ``-``."""
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="The rows as JSON")] = False) -> None:
    """Every tenant."""
    tenants = TenantStore().list()
    if as_json:
        print(json.dumps([t.to_json() for t in tenants], indent=1))
        return
    table = folding_table(
        "tenant",
        "region",
        "tier",
        "share data",
        "global model",
        "onboarded",
        "model kinds",
        "seen items",
        "holdout",
        "windows (days): label / churn / feature",
        "min rating",
        "interactions",
        "quotas (events a day / requests a minute)",
        "name",
    )
    shared = {t.region for t in tenants if t.feeds_global_model}  # the regions that have a global model to serve
    for t in tenants:
        # a window's setting, or "cadence": derived from the tenant's activity (int_tenant_windows)
        days = (t.label_window_days, t.churn_window_days, t.feature_window_days)
        windows = "/".join(str(d) if d is not None else "cadence" for d in days) if any(days) else "cadence"
        kinds, opted = ",".join(t.model_kinds) or "all", " (opted in)" if t.global_model_region != t.region else ""
        table.add_row(
            t.tenant_id,
            t.region,
            t.isolation,
            "yes" if t.share_data else "no",
            t.global_model_region + opted + ("" if t.global_model_region in shared else " (none: nobody shares data)"),
            str(t.onboarded_at),
            kinds,
            t.seen_items,
            t.holdout_protocol,
            windows,
            _rating(t),
            ",".join(t.interaction_types) or "default",
            f"{t.quota_events_per_day:,} / {t.quota_requests_per_minute:,}" + _suspended(t),
            Text(t.display_name),  # free text: never read as Rich markup
        )
    out.print(table)


@app.command()
def show(tenant_id: str) -> None:
    """One tenant's fields, what they make of it (its interactions; what a quota of 0 suspends) and its source
    spec (null: the landing contract as is), as JSON: a `tenants seed` entry as it is. On stderr, what its empty
    fields mean: every kind, the platform's interactions, and the windows its last features build chose."""
    store = TenantStore()
    tenant = store.get(tenant_id)
    row = tenant.to_json() | {"interactions": list(tenant.interactions), "suspended": list(tenant.suspended)}
    row["source_spec"] = store.source_spec(tenant_id)
    print(json.dumps(row, indent=1))
    if not tenant.model_kinds:  # on stderr: the JSON stays a seed entry
        typer.echo(f"model_kinds []: every registered kind ({', '.join(k.name for k in kinds_of(tenant))})", err=True)
    if not tenant.interaction_types:
        typer.echo(f"interaction_types []: the platform's ({', '.join(tenant.interactions)})", err=True)
    if note := unset_windows_note(get_settings(), tenant):  # what its cadence made of the windows left unset
        typer.echo(note, err=True)


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
    """Load tenants from a JSON or YAML list: new ones onboarded, those there changed in the fields an
    entry names (the others kept); a bad entry stores none."""
    store = TenantStore()
    before, known = {t.tenant_id: t for t in store.list()}, store.regions()
    for t in seed_from_file(file, store, check=lambda t: validate_kinds(t.model_kinds), stored=before):
        if t.tenant_id not in before:
            print(f"onboarded {t.tenant_id} in region {t.region} ({t.isolation})." + _new_region(t, known))
        _say_changes(before.get(t.tenant_id), t)


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
