"""The status contract: one object per tenant, read from the real stores every time.

Sources: the control database (tenants), the lake partitions' manifests and Parquet footers, the
warehouse (DuckDB, opened read-only), the feature health written by the features DAG's Great
Expectations checks, and the MLflow registry. Nothing is cached here. Field names are a contract
(ARCHITECTURE.md): they never change once they exist; new fields may be added.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.core import tenant_parquet
from ml.core.layout import LAKE_FILE, MANIFEST_FILE
from ml.core.settings import Settings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import WarehouseKeyError, connect
from ml.data.feature_checks import read_health
from ml.models.kinds import get_kind, kinds_of
from ml.ops.landing_status import landing_warnings

BUILD = "run the features DAG (or `tenantflow features build`)"


def mlflow_store_missing(settings: Settings) -> bool:
    """Nothing was trained yet with the embedded SQLite store: readers must not create it (MLflow's
    client would, with its tables, on the first call)."""
    uri = settings.mlflow_tracking_uri
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists()


def _feature_rows(settings: Settings, tenant: Tenant) -> tuple[int | None, str | None]:
    import duckdb

    path = settings.stores.warehouse_file(tenant.warehouse_key)
    if not path.exists():
        return None, f"no warehouse yet: {BUILD}"
    try:
        con = connect(path, read_only=True)
    except WarehouseKeyError as exc:  # one silo tenant's key problem: its row says so, the others go on
        return None, str(exc)
    except duckdb.Error as exc:  # a writer holds the file right now
        return None, f"warehouse busy ({type(exc).__name__}); try again when the features DAG is done"
    try:
        row = con.execute("select count(*) from user_features where tenant_id = ?", [tenant.tenant_id]).fetchone()
        return int(row[0]) if row else 0, None
    except duckdb.Error:
        return None, f"warehouse has no user_features table yet: {BUILD}"
    finally:
        con.close()


def _models(settings: Settings, tenant: Tenant) -> dict[str, dict[str, Any]]:
    """Champion and challenger per model kind, read from the MLflow registry."""
    empty: dict[str, Any] = {
        "champion_version": None,
        "challenger_version": None,
        "trained_on": None,
        "metrics": {},
        "baseline_metrics": {},
    }
    names = [k.name for k in kinds_of(tenant)]
    if mlflow_store_missing(settings):
        return {kind: dict(empty) for kind in names}
    from ml.models import registry

    return {kind: {**empty, **(registry.describe(kind, tenant.tenant_id, settings) or {})} for kind in names}


def _drift(settings: Settings, tenant: Tenant, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The monitor's latest verdict (the warehouse's ``monitoring`` table) and why the newest training ran."""
    from ml.monitoring.results import latest_results

    latest = latest_results(settings, tenant.tenant_id, tenant.warehouse_key) or {}
    # why the newest training (of any kind) ran: a champion's, or a challenger's refused since
    trainings = [(m.get("trained_at") or "", m["trained_because"]) for m in models.values() if m.get("trained_because")]
    trainings += [
        (m.get("challenger_trained_at") or "", m["challenger_trained_because"])
        for m in models.values()
        if m.get("challenger_trained_because")
    ]
    return {
        "last_checked_at": latest.get("last_checked_at"),
        "drifted": latest.get("drifted"),
        "last_retrain_reason": max(trainings)[1] if trainings else None,
        "report_path": latest.get("report_path"),
        "checks": latest.get("checks", []),
        "error": latest.get("error"),  # why the monitor's verdict cannot be read now (None: it was, or there is none)
    }


def _published(settings: Settings, tenant: Tenant) -> dict[str, Any] | None:
    """The features snapshot the tenant's ``CURRENT`` names (``snapshot_id``, ``serving_cutoff``, ``published_at``),
    which the API serves (one that does not load: an older one, as its ``/readyz`` says): an unhealthy tenant's last
    good one; None before its first healthy build; with ``error`` (the other keys None) when the pointer cannot be
    read."""
    from ml.data.publish import PointerError, current

    try:
        meta = current(settings, tenant.region, tenant.tenant_id)
    except PointerError as exc:  # one tenant's unreadable pointer is its row's own
        return {"snapshot_id": None, "serving_cutoff": None, "published_at": None, "error": str(exc)}
    return {k: meta.get(k) for k in ("snapshot_id", "serving_cutoff", "published_at")} if meta else None


def _lake_rows(settings: Settings, tenant: Tenant, partitions: list[Path]) -> tuple[int, str | None]:
    """Rows in the tenant's lake (a silo tenant's files are encrypted), or 0 and why they cannot be
    counted: one silo tenant's key problem is its row's problem, the others go on."""
    files = [p / LAKE_FILE for p in partitions if (p / LAKE_FILE).exists()]
    try:
        return tenant_parquet.num_rows(files, settings, tenant.tenant_id), None
    except tenant_parquet.TenantKeyError as exc:
        return 0, f"lake not readable: {exc}"


def tenant_status(settings: Settings, tenant: Tenant) -> dict[str, Any]:
    events_in = duplicates = other_tenant_rows = unattributed = 0
    quarantined: Counter[str] = Counter()
    dropped: Counter[str] = Counter()  # by the tenant's own row rules (``rows.missing_user: drop``), erased users
    ingest_warnings: list[str] = []
    days = settings.stores.lake.days(tenant.region, tenant.tenant_id)
    partitions = [settings.stores.lake.day_dir(tenant.region, tenant.tenant_id, d) for d in days]
    waiting: dict[str, list[str]] = {}  # day -> the files its last ingestion left waiting
    stamps: dict[str, float] = {}  # day -> when its partition last changed (a manifest is rewritten only then)
    last_landed: str | None = None  # the last day with rows in the lake (not one of quarantined rows only)
    for part in partitions:
        manifest_path = part / MANIFEST_FILE
        if manifest_path.exists():
            m = json.loads(manifest_path.read_text())
            stamps[m["date"]] = manifest_path.stat().st_mtime
            last_landed = m["date"] if m.get("landed") else last_landed
            events_in += m["rows_in"]
            duplicates += m["duplicates_dropped"]
            quarantined.update(m["quarantined"])
            dropped.update(m.get("dropped", {}))
            other_tenant_rows += m.get("other_tenant_rows", 0)
            unattributed += m.get("unattributed_lines", 0)
            ingest_warnings += [f"{m['date']}: {p}" for p in m["batch_problems"]]
            if m.get("waiting_files"):  # as of that day's last ingestion
                waiting[m["date"]] = m["waiting_files"]
    ingest_warnings += landing_warnings(settings, tenant, days, waiting)
    changed_at = max(stamps.values(), default=0.0)

    lake_rows, lake_note = _lake_rows(settings, tenant, partitions)
    feature_rows, feature_note = _feature_rows(settings, tenant)
    models = _models(settings, tenant)
    health = read_health(settings, tenant.tenant_id)
    problems: list[str] = [lake_note] if lake_note else []
    if not partitions:
        problems.append(
            "no data in the lake yet: drop files in landing/ and run the ingest DAG "
            "(or `tenantflow ingest --start <first day>`)"
        )
    if health is None:
        problems.append(f"features not checked yet: {BUILD}")
    else:
        problems += health["health_problems"]
    if feature_note and health is not None and not feature_rows:
        problems.append(feature_note)

    return {
        "tenant_id": tenant.tenant_id,
        "display_name": tenant.display_name,
        "region": tenant.region,
        "isolation": tenant.isolation,
        "share_data": tenant.share_data,
        "onboarded_at": tenant.onboarded_at.isoformat(),
        "events_in": events_in,
        "quarantined": dict(sorted(quarantined.items())),
        "duplicates_dropped": duplicates,
        "dropped": dict(sorted(dropped.items())),
        "other_tenant_rows": other_tenant_rows,
        "unattributed_lines": unattributed,
        "lake_rows": lake_rows,
        "lake_days": len(partitions),
        "lake_last_day": last_landed,
        "lake_changed_at": _iso(changed_at) if changed_at else None,
        # the earliest lake day changed after the last feature check: a build must rebuild from it (an import's
        # old days lie before the incremental models' recent days)
        "lake_changed_from": min(
            (d for d, t in stamps.items() if health and t > datetime.fromisoformat(health["checked_at"]).timestamp()),
            default=None,
        ),
        "feature_rows": feature_rows,
        "healthy": not problems,
        "health_problems": problems,
        "ingest_warnings": ingest_warnings,
        "quarantine_path": str(settings.stores.quarantine.tenant_dir(tenant.region, tenant.tenant_id)),
        "features_checked_at": health["checked_at"] if health else None,
        "published": _published(settings, tenant),
        "models": models,
        "drift": _drift(settings, tenant, models),
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def status(settings: Settings | None = None, tenant_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The status of every onboarded tenant (or the named ones)."""
    settings = settings or get_settings()
    return [tenant_status(settings, t) for t in TenantStore(settings).select(tenant_ids)]


def status_table(rows: list[dict[str, Any]]) -> Any:
    """The human summary (a :class:`rich.table.Table`): a row per tenant, its data, health, each
    kind's champion and the monitor's last verdict. Cells are plain text (no Rich markup: tenant
    names, problems and reasons are shown as they are)."""
    from rich.text import Text

    from ml.ops.tables import folding_table

    table = folding_table("tenant", "data", "health", "models", "monitoring", show_lines=True)
    for r in rows:
        q = sum(r["quarantined"].values())
        data = [
            f"events in {r['events_in']:,}",
            f"quarantined {q:,}",
            f"duplicates {r['duplicates_dropped']:,}",
            *(f"dropped ({k}) {n:,}" for k, n in r["dropped"].items()),  # a spec's row rule, an erased user's rows
            f"lake rows {r['lake_rows']:,}",
            f"feature rows {r['feature_rows']:,}" if r["feature_rows"] is not None else "feature rows -",
        ]
        health = Text("ok", "green") if r["healthy"] else Text("\n".join(["UNHEALTHY", *r["health_problems"]]), "red")
        if (not r["healthy"] and r.get("lake_rows")) or (r.get("published") or {}).get("error"):  # what the API serves
            health.append("\n" + _still_served(r.get("published")), "yellow")
        table.add_row(
            Text.assemble((r["tenant_id"], "bold"), f"\n{r['region']} · {r['isolation']}"),
            Text("\n".join([*data, f"shares data: {'yes' if r['share_data'] else 'no'}"])),
            health,
            Text("\n".join(line for kind, m in r["models"].items() for line in model_lines(kind, m))),
            Text("\n".join(_monitoring_lines(r))),
        )
    return table


def format_table(rows: list[dict[str, Any]], width: int = 200) -> str:
    """:func:`status_table` as plain text ``width`` characters wide, then :func:`report_lines` (the demo's
    summary, tests)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(status_table(rows))
    return "\n".join([console.export_text().rstrip("\n"), *report_lines(rows)])


def _still_served(published: dict[str, Any] | None) -> str:
    if not published:
        return "nothing published yet: the API has no features for it"
    if published.get("error"):
        return f"its published features pointer (CURRENT) cannot be read: {published['error']}"
    return (
        f"the API still serves features snapshot {published['snapshot_id']} "
        f"(cutoff {published['serving_cutoff']}, published {published['published_at']})"
    )


def model_lines(kind: str, m: dict[str, Any]) -> list[str]:
    """A model kind's lines in the status table, from :func:`ml.models.registry.describe`'s ``m``: its
    champion and challenger, the champion's holdout figures (or, with none, the gate's reason), baseline,
    how many users judged it, what it replaced, and last why the gate refused the challenger."""
    refused = m["challenger_version"] and f"v{m['challenger_version']} refused: {m.get('challenger_reason') or '-'}"
    if not m["champion_version"]:
        why = f"no model trained yet (a training run that skips it says why: `tenantflow train --kind {kind}`)"
        return [f"{kind}: no champion", "  " + (refused or why)]
    lines = [
        f"{kind}: champion v{m['champion_version']} ({champion_label(m)})"
        + (f", challenger v{m['challenger_version']}" if m["challenger_version"] else "")
    ]
    if m["metrics"]:
        lines.append("  " + ", ".join(f"{k}={v:.3f}" for k, v in m["metrics"].items()))
    elif m.get("gate_reason"):  # no holdout of its own (a young tenant's): why the gate took it
        lines.append(f"  {m['gate_reason']}")
    if m["baseline_metrics"]:
        lines.append("  baseline " + ", ".join(f"{k}={v:.3f}" for k, v in m["baseline_metrics"].items()))
    if m.get("holdout"):
        lines.append(f"  ({_judged(m['holdout'])})")
    elif counted := holdout_examples(m, ranks=get_kind(kind).group is not None):
        lines.append(f"  ({counted} judged at its last labelled cutoff)")
    prev = m.get("previous_champion")
    if prev and prev["metrics"] and m["metrics"]:
        moved = ", ".join(
            f"{k} {v:.3f} -> {m['metrics'][k]:.3f}" for k, v in prev["metrics"].items() if k in m["metrics"]
        )
        lines.append(
            f"  replaced v{prev['version']} (trained because: {m.get('trained_because')}); same holdout: {moved}"
        )
    if refused and m.get("challenger_reason"):  # why the champion still serves
        lines.append(f"  {refused}")
    return lines


def _drifted(check: dict[str, Any]) -> str:
    """A drifted check as the table shows it: ``data_drift/events drifted_columns=3: a, b, c (threshold 1)``."""
    from ml.monitoring.results import reading

    said = reading(check["metric"], check["value"], check["threshold"], check.get("detail") or "")
    return f"{check['check']}/{check['kind']} {said}"


def report_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Where the Evidently reports of each tenant's drifted checks are, one line per report with the checks
    it shows (``umbrella prediction_drift/recommender: <path>``; a feature check's reports of its columns
    judged over items and users too, ``recommender.items.html``; a check without a report, live performance,
    has none): whole paths, to open or copy, below the table, which would fold them."""
    return [line for r in rows for line in _report_lines(r)]


def _report_lines(r: dict[str, Any]) -> list[str]:
    by_report: dict[str, list[str]] = {}
    for c in _drifted_checks(r["drift"]):
        for path in c.get("reports", []):  # a feature check's per-entity reports too (ml.monitoring.results)
            if (named := f"{c['check']}/{c['kind']}") not in by_report.get(path, []):
                by_report.setdefault(path, []).append(named)
    return [f"{r['tenant_id']} {', '.join(checks)}: {path}" for path, checks in by_report.items()]


def _drifted_checks(drift: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in drift.get("checks", []) if c["status"] == "ok" and c["drifted"]]


def _monitoring_lines(r: dict[str, Any]) -> list[str]:
    lines, drift = [], r["drift"]
    if drift["last_checked_at"]:
        judged = [c for c in drift.get("checks", []) if c["status"] == "ok"]
        hit = [_drifted(c) for c in _drifted_checks(drift)]
        verdict = (
            "DRIFTED: " + "; ".join(hit) if hit else f"no drift ({len(judged)} check{'s' * (len(judged) != 1)} judged)"
        )
        lines.append(f"monitor {drift['last_checked_at'][:16]}Z: {verdict}")
        if _report_lines(r):  # a path is one long word: a cell would fold it; naming drifted checks without one
            none = [f"{c['check']}/{c['kind']}" for c in _drifted_checks(drift) if not c.get("reports")]
            lines.append("reports: below the table" + (f" ({', '.join(none)}: no report)" if none else ""))
    elif drift.get("error"):  # its first clause: the key's problem is in the health column
        lines.append(f"monitor's verdict not readable: {drift['error'].split(': ')[0]}")
    else:
        lines.append("not monitored yet")
    if _after(r.get("lake_changed_at"), r.get("features_checked_at")):
        build = f"`tenantflow features build --tenant {r['tenant_id']} --rebuild-from {r.get('lake_changed_from')}`"
        build = f"run the features DAG (or {build})" if r.get("lake_changed_from") else BUILD
        lines.append(f"lake changed after the last feature check ({r['features_checked_at']}): {build}")
    if r["ingest_warnings"]:  # the last three, those naming a command to run last (shown whole)
        w = sorted(r["ingest_warnings"], key=lambda x: "`tenantflow " in x)
        more = "" if len(w) <= 3 else f" (all {len(w)}: `tenantflow status --json`)"
        lines.append(f"ingest warnings ({len(w)}){more}: " + "; ".join(w[-3:]))
    if r["quarantined"]:
        lines.append("quarantined by reason: " + ", ".join(f"{k}={v:,}" for k, v in r["quarantined"].items()))
        if r.get("quarantine_path"):  # each row with its reason, file, line and raw text
            lines.append(f"quarantined rows: {r['quarantine_path']}")
    return lines


def _after(changed: str | None, checked: str | None) -> bool:
    """Whether the lake changed after the features were checked (both ISO 8601 times; False if either is missing)."""
    return bool(changed and checked) and datetime.fromisoformat(str(changed)) > datetime.fromisoformat(str(checked))


def champion_label(m: dict) -> str:
    """How a champion was made: its model family (``lightgbm``, ``ease``, ``recency``, ...; a version from before
    the family tag is LightGBM) and what it was trained on (``global``, ``fine_tuned``, ``tenant``)."""
    from ml.models.champion import version_label

    return version_label(m.get("family"), m["trained_on"])


def families_protocol(holdout: dict[str, Any]) -> str | None:
    """The protocol that picked the family where it is not the holdout's own (a small tenant's: ``random``)."""
    families = holdout.get("families_protocol")
    return families if families and families != holdout["protocol"] else None


def holdout_examples(m: dict[str, Any], ranks: bool = False) -> str | None:
    """What a champion's figures stand on without a ranking holdout summary (:func:`ml.models.registry.describe`'s
    ``holdout_rows``): ``2,129 examples`` (churn's, engagement's: a user each at the holdout's cutoff), ``(user,
    item) pairs`` for a kind that ``ranks`` (a global recommender's); None without figures."""
    if not (m.get("holdout_rows") and m.get("metrics")):
        return None
    return f"{m['holdout_rows']:,} " + ("(user, item) pairs" if ranks else "examples")


def _judged(holdout: dict[str, Any]) -> str:
    """``15 users judged, temporal holdout; families chosen by the random protocol`` or ``705 users
    judged, random holdout: the temporal one judged 7% of the users with history``."""
    text = f"{holdout['users']:,} users judged, {holdout['protocol']} holdout"
    if families := families_protocol(holdout):
        text += f"; families chosen by the {families} protocol"
        if rand := holdout.get("random"):  # what it saw: the champion's figure there, and popularity's
            text += f", where the champion's {rand['metric']} is {rand['value']:.3f}" + (
                f" against popularity's {rand['baseline']:.3f}" if rand["baseline"] is not None else ""
            )
    share = holdout.get("temporal_judged_share")
    if holdout["protocol"] != "temporal" and share is not None:
        text += f": the temporal one judged {share:.0%} of the users with history"
    return text
