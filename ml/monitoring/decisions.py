"""What the monitor asks for: at most one ``train`` DAG run per monitor run, for the drifted tenants.

:func:`decide` honours each tenant's policy (cooldown after a training), never asks again for a
tenant whose retrain is still open, and keeps to a platform-wide daily budget (most drifted
first). Requests are rows of the control database's ``retrain_requests``; the train run closes
them (:func:`close_requests`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from ml.core import control_db
from ml.core.ids import validate_slug
from ml.core.settings import Settings, get_settings
from ml.models import registry
from ml.monitoring import policy as policies

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def open_requests(settings: Settings, max_age_hours: float = 12.0) -> dict[str, dict]:
    """Tenants with a drift retrain requested and not finished (stale ones expire)."""
    since = (_now() - timedelta(hours=max_age_hours)).isoformat()
    with control_db.connect(settings) as con:
        rows = con.execute(
            "select tenant_id, train_run_id, requested_at from retrain_requests "
            "where status = 'requested' and requested_at >= ?",
            [since],
        ).fetchall()
    return {t: {"train_run_id": r, "requested_at": a} for t, r, a in rows}


def requests_today(settings: Settings) -> int:
    since = (_now() - timedelta(days=1)).isoformat()
    with control_db.connect(settings) as con:
        (n,) = con.execute("select count(*) from retrain_requests where requested_at >= ?", [since]).fetchone()
    return int(n)


def last_trained_at(tenant_id: str, kinds: list[str], settings: Settings) -> datetime | None:
    """When the tenant last got a new model version of these kinds (any reason), from MLflow."""
    c = registry.client(settings)
    latest = None
    for kind in kinds:
        name = registry.model_name(kind, tenant_id)
        try:
            versions = c.search_model_versions(f"name = '{name}'", max_results=1, order_by=["version_number DESC"])
        except Exception:
            continue
        for v in versions:
            at = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)
            latest = at if latest is None or at > latest else latest
    return latest


def decide(
    summaries: dict[str, dict[str, Any]], monitor_run: str, settings: Settings | None = None
) -> dict[str, Any] | None:
    """The conf of one ``train`` run for the tenants that drifted and may be retrained now, or None.

    Skipped, with the reason logged and returned: tenants in cooldown, tenants whose retrain is
    still open, and tenants beyond the day's budget (most drifted checks first).
    """
    settings = settings or get_settings()
    open_ = open_requests(settings)
    daily_budget = policies.platform_policy(settings).daily_budget
    budget_left = daily_budget - requests_today(settings)
    candidates: list[str] = []
    skipped: dict[str, str] = {}
    for tid, s in sorted(summaries.items(), key=lambda kv: (-len(kv[1].get("checks", [])), kv[0])):
        if not s.get("drifted"):
            continue
        policy = policies.for_tenant(tid, settings)
        if tid in open_:
            skipped[tid] = f"a drift retrain is already open ({open_[tid]['train_run_id']})"
            continue
        trained = last_trained_at(tid, s["kinds"], settings)
        if trained is not None and _now() - trained < timedelta(hours=policy.cooldown_hours):
            skipped[tid] = f"cooldown: last trained {trained:%Y-%m-%d %H:%M} UTC (< {policy.cooldown_hours:g} h ago)"
            continue
        if len(candidates) >= budget_left:
            skipped[tid] = f"daily retrain budget of {daily_budget} tenants used up"
            continue
        candidates.append(tid)
    for tid, why in skipped.items():
        log.warning("tenant %s drifted but is not retrained now: %s", tid, why)
    if not candidates:
        return None
    train_run_id = f"drift__{monitor_run}"
    kinds = sorted({k for t in candidates for k in summaries[t]["kinds"]})
    reports = {t: summaries[t]["reports"] for t in candidates}
    now = _now().isoformat()
    with control_db.connect(settings) as con:
        for t in candidates:
            con.execute(
                "insert into retrain_requests (tenant_id, kinds, requested_at, monitor_run, train_run_id, reason, report_paths, status)"
                " values (?, ?, ?, ?, ?, ?, ?, 'requested')",
                [
                    t,
                    json.dumps(summaries[t]["kinds"]),
                    now,
                    monitor_run,
                    train_run_id,
                    "; ".join(summaries[t]["reasons"])[:2000],
                    json.dumps(reports[t]),
                ],
            )
    return {
        "tenants": candidates,
        "kinds": kinds,
        "reason": "drift",
        "force": True,
        "reports": reports,
        "drift": {t: summaries[t]["reasons"] for t in candidates},
        "skipped": skipped,
        "train_run_id": train_run_id,
    }


def close_requests(train_run_id: str, results: list[dict], settings: Settings | None = None) -> int:
    """Mark the drift requests served by this train run done, per tenant; failed when the tenant's
    training failed or never ran (the run's `plan`, or its chunk's task, failed). Each gets its
    ``outcome`` (:func:`outcome`; "its training never ran"). Returns how many requests it closed."""
    settings = settings or get_settings()
    ran = {r["tenant_id"] for r in results}
    failed = {r["tenant_id"] for r in results if r.get("error")}
    with control_db.connect(settings) as con:
        rows = con.execute(
            "select id, tenant_id from retrain_requests where train_run_id = ? and status = 'requested'", [train_run_id]
        ).fetchall()
        for rid, tid in rows:
            con.execute(
                "update retrain_requests set status = ?, closed_at = ?, outcome = ? where id = ?",
                [
                    "failed" if tid in failed or tid not in ran else "done",
                    _now().isoformat(),
                    outcome([r for r in results if r["tenant_id"] == tid]) if tid in ran else "its training never ran",
                    rid,
                ],
            )
    return len(rows)


def outcome(results: list[dict]) -> str:
    """What a train run did for one tenant, per model kind, from its ``train_tenant`` results: ``recommender v2
    refused (kept as challenger): <the gate's reason>``, ``churn v4 promoted: <reason>``, ``churn failed``,
    ``churn skipped: <why>`` (a tenant skipped whole: ``skipped: <why>``), joined by ``; `` (at most 2,000
    characters, as a request's reason)."""
    parts = []
    for r in results:
        kind = r.get("kind", "every kind")
        if r.get("error"):
            parts.append(f"{kind} failed")
        elif r.get("skipped"):  # before the version: a kind left alone carries its champion's
            parts.append(f"{kind} skipped: {r['skipped']}" if "kind" in r else f"skipped: {r['skipped']}")
        elif r.get("version"):
            verdict = "promoted" if r.get("promoted") else "refused (kept as challenger)"
            parts.append(f"{kind} v{r['version']} {verdict}" + (f": {r['reason']}" if r.get("reason") else ""))
        else:
            parts.append(f"{kind}: " + ("promoted" if r.get("promoted") else "no new version"))
    return "; ".join(parts)[:2000]


def retrain_history(tenant_id: str | None = None, settings: Settings | None = None) -> list[dict]:
    """Every drift retrain request (of ``tenant_id``, or all), oldest first: ``tenant_id``, ``kinds``, ``requested_at``,
    ``train_run_id``, ``reason``, ``report_paths``, ``status`` (requested, done, failed), ``closed_at`` and
    ``outcome`` (None while open and for requests closed before migration 0019)."""
    settings = settings or get_settings()
    keys = (
        "tenant_id", "kinds", "requested_at", "train_run_id", "reason", "report_paths", "status", "closed_at", "outcome"
    )  # fmt: skip
    sql = f"select {', '.join(keys)} from retrain_requests"  # the column names above, no input
    args = []
    if tenant_id:
        sql += " where tenant_id = ?"
        args.append(validate_slug(tenant_id))
    with control_db.connect(settings) as con:
        rows = con.execute(sql + " order by id", args).fetchall()
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:  # stored as JSON text
        r["kinds"], r["report_paths"] = json.loads(r["kinds"]), json.loads(r["report_paths"])
    return out
