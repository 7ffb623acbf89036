"""``tenantflow train | score | models``: the model plane without Airflow, and the registry by hand."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.ops.cli.progress import out, steps
from ml.ops.tables import folding_table

models_app = typer.Typer(help="The MLflow model registry: champions, promotion, rollback, audit.", no_args_is_help=True)

Tenants = Annotated[list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable)")]


def train(
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Only these tenants (and no global model)")
    ] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Default: every registered kind")] = None,
    reason: Annotated[str, typer.Option(help="Why (logged on every MLflow run)")] = "manual",
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the data snapshot is unchanged")] = False,
) -> None:
    """Train and gate models without Airflow (what the train DAG runs): snapshot, global, per tenant."""
    from ml.core.warehouse import warehouses
    from ml.models import kinds as model_kinds
    from ml.models.fairness import fairness
    from ml.models.runs import global_regions, snapshot_warehouse, unhealthy
    from ml.models.train import train_global, train_tenant

    settings = get_settings()
    tenants = TenantStore(settings).select(tenant)
    kind_names = list(model_kinds.validate_kinds(kind)) if kind else model_kinds.kind_names()
    for wh in warehouses(tenants):
        snapshot_warehouse(wh, [t.tenant_id for t in tenants] if tenant else None, settings)
    regions = [] if tenant else global_regions(tenants)
    jobs = [(k, None, r) for k in kind_names for r in regions] + [
        (k, t.tenant_id, None) for k in kind_names for t in tenants
    ]
    results: list[dict[str, Any]] = []
    with steps("train", len(jobs)) as s:
        for k, tid, region in jobs:
            why = unhealthy(settings, tid) if tid else None  # the train DAG's rule
            if why:
                r = {"tenant_id": tid, "kind": k, "skipped": why}
            elif region is not None:
                r = train_global(k, region, reason, settings, force=force)
            else:
                r = train_tenant(k, str(tid), reason, settings, force=force)
            results.append(r)
            s.advance(f"{k}.{r['tenant_id']}: " + ("skipped" if r.get("skipped") else f"v{r.get('version')}"))
    fairness(results, settings)
    keep = (
        "tenant_id",
        "kind",
        "version",
        "family",
        "trained_on",
        "promoted",
        "reason",
        "skipped",
        "metrics",
        "baseline_metrics",
    )
    for r in results:
        print(json.dumps({k: r[k] for k in keep if k in r}, default=str))


def score(tenant: Tenants = None, k: Annotated[int, typer.Option("-k", help="Recommendations per user")] = 10) -> None:
    """Batch-score users with the champions (what the score DAG runs)."""
    from ml.core.warehouse import warehouses
    from ml.models.score import score_warehouse

    settings = get_settings()
    whs = warehouses(TenantStore(settings).select(tenant))
    with steps("score", len(whs)) as s:
        for wh in whs:
            res = score_warehouse(wh, settings, tenant or None, k=k)
            s.advance(wh.key)
            print(json.dumps(res, default=str))


@models_app.command("list")
def list_() -> None:
    """Champion and challenger of every registered model, and the holdout its metrics stand on; a refused
    challenger's line says why the gate kept it out (its figures against the champion's on one holdout)."""
    from ml.models import registry
    from ml.models.kinds import all_kinds, get_kind, kinds_of
    from ml.models.runs import global_regions

    settings = get_settings()
    table = folding_table("model", "champion", "challenger", "family", "trained on", "holdout metrics", "judged")
    tenants = TenantStore(settings).list()
    regions = global_regions(tenants)
    rows = [(registry.global_owner(r), k.name) for k in all_kinds() for r in regions] + [
        (t.tenant_id, k.name) for t in tenants for k in kinds_of(t)
    ]
    for tid, kind in rows:
        d = registry.describe(kind, tid, settings)
        if d is None:
            continue
        table.add_row(
            registry.model_name(kind, tid),
            _v(d["champion_version"]),
            _v(d["challenger_version"]),
            d.get("family") or "-",
            d["trained_on"] or "-",
            Text(metrics_cell(d)),  # the gate's reasons: never read as Rich markup
            judged_cell(d, ranks=get_kind(kind).group is not None),
        )
    out.print(table)


def metrics_cell(d: dict) -> str:
    """``models list``'s holdout metrics of one model (:func:`ml.models.registry.describe`'s dict): the
    champion's (none: the gate's reason for taking it), then why a challenger does not serve (the gate's
    figures against the champion's)."""
    metrics = ", ".join(f"{m}={v:.3f}" for m, v in d["metrics"].items())
    if d["champion_version"] and not metrics:  # a champion taken without holdout figures: the gate's why
        metrics = f"none: {d['gate_reason']}" if d.get("gate_reason") else "none"
    if not (d["challenger_version"] and d.get("challenger_reason")):
        return metrics
    refused = f"v{d['challenger_version']} refused: {d['challenger_reason']}"
    return f"{metrics}\n{refused}" if d["champion_version"] else refused


def judged_cell(d: dict, ranks: bool = False) -> str:
    """``models list``'s ``judged``: what the champion's holdout figures stand on. A ranking's holdout
    (``35 users, temporal; families by random``: the users judged, its protocol, and the protocol that picked the
    family where that differs; ``status`` adds the temporal holdout's judged share); else the holdout's examples
    (``2,129 examples``: churn's and engagement's, a user each at the holdout cutoff; for a kind that ``ranks``, a
    global model's say, ``(user, item) pairs``); ``-`` without figures."""
    from ml.ops.status import families_protocol, holdout_examples

    if judged := d.get("holdout"):
        families = families_protocol(judged)
        return f"{judged['users']:,} users, {judged['protocol']}" + (f"; families by {families}" if families else "")
    return holdout_examples(d, ranks) or "-"


@models_app.command()
def show(tenant_id: str, kind: str) -> None:
    """One model's champion and challenger, with lineage and metrics, as JSON."""
    from ml.models import registry

    print(json.dumps(registry.describe(kind, tenant_id, get_settings()), indent=1, default=str))


@models_app.command()
def promote(
    tenant_id: str, kind: str, version: str, reason: Annotated[str, typer.Option(help="Why; written to the audit log")]
) -> None:
    """Make a version champion by hand (audited)."""
    from ml.models import registry

    e = registry.promote(kind, tenant_id, version, reason, get_settings())
    print(f"{registry.model_name(kind, tenant_id)}: champion v{e.from_version} -> v{e.to_version} ({e.reason})")


@models_app.command()
def rollback(tenant_id: str, kind: str, reason: Annotated[str, typer.Option()] = "manual rollback") -> None:
    """Move champion back to the previous version (audited)."""
    from ml.models import registry

    e = registry.rollback(kind, tenant_id, reason, get_settings())
    print(f"{registry.model_name(kind, tenant_id)}: champion rolled back v{e.from_version} -> v{e.to_version}")


@models_app.command()
def audit(
    tenant: Annotated[str | None, typer.Option()] = None, kind: Annotated[str | None, typer.Option()] = None
) -> None:
    """Promotions, refusals and rollbacks: who, what, when, why."""
    from ml.models import audit as audit_log

    table = folding_table("at (UTC)", "model", "action", "from", "to", "actor", "reason")
    for e in audit_log.entries(get_settings(), tenant, kind):
        table.add_row(
            e.at, f"{e.kind}.{e.tenant_id}", e.action, _v(e.from_version), _v(e.to_version),
            e.actor, e.reason,
        )  # fmt: skip
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command(help="Train and gate models without Airflow (what the train DAG runs).")(train)
    app.command(help="Batch-score users with the champions (what the score DAG runs).")(score)
    app.add_typer(models_app, name="models")


def _v(version: object) -> str:
    """``v3``, or ``-`` where there is no version."""
    return f"v{version}" if version else "-"
