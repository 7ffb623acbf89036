"""Per-tenant drift and decay monitoring, and what to do about it: retrain or roll back.

For every tenant with a champion the monitor compares the champion's **reference window** (what
the data looked like when the champion was trained: its training snapshot's serving rows, and
the lake's events of the weeks before) with the **current window** (today's serving marts and
the last week of events), with Evidently 0.7 reports:

* ``data_drift``: the tenant's raw behaviour (topic of what users view, dwell time, device);
* ``feature_drift`` per model kind: the model's declared input columns;
* ``prediction_drift`` per model kind: the champion's score distribution on both windows;
* ``performance`` per model kind: live HitRate@10 of the recommendations the champion served
  (``predictions.recommendations`` and the API's prediction log) against the clicks that
  followed, once a whole label window has passed, compared with the champion's holdout
  HitRate@10; live ROC-AUC of its churn scores once their 14-day churn window has passed,
  against the holdout's.

Every result is a row of the warehouse's ``monitoring`` table (tenant, check, window, metric,
value, threshold, drifted, status); the HTML reports are kept per tenant and date and logged
on the champion's MLflow run. A window that cannot be judged (empty, too small, all-null or
single-valued columns) is recorded as such, never as "no drift": a NaN distance is an error.

:func:`decide` turns the results into at most one ``train`` DAG run (the tenants, the reason
``drift``, the reports), honouring each tenant's policy (cooldown after a retrain, minimum data)
and a platform-wide daily budget, and never asks again for a tenant whose retrain is still
open. :func:`watch_promotions` rolls a freshly promoted champion back when its live metrics fall
below the champion it replaced.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ml import registry
from ml.features import Warehouse, warehouse_lock
from ml.settings import Settings, dataclass_from_env, get_settings
from ml.tenants import TenantRegistry, validate_slug

log = logging.getLogger(__name__)

KINDS = ("recommender", "churn")
EVENT_COLUMNS = {"numerical": ["dwell_seconds"], "categorical": ["topic", "device"]}
HORIZONS = (1, 7)  # days of clicks after a batch of recommendations: next-day and a full label window
LABEL_WINDOW_DAYS = 7  # dbt var label_window_days: the holdout's HitRate@10 counts clicks over this window
CHURN_WINDOW_DAYS = 14  # dbt var churn_window_days: a churn label is a cancellation within this window
LIVE_COLUMNS = {"tenant_id", "kind", "source", "model_version", "as_of", "horizon_days", "users_scored", "users_active",
                "users_hit", "impressions", "recommended_clicked", "hit_rate_at_10", "ctr", "roc_auc", "pr_auc",
                "computed_at"}  # fmt: skip


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class MonitorPolicy:
    """When a tenant counts as drifted, and how often it may be retrained for it.

    Defaults come from ``TENANTFLOW_MONITOR_<FIELD>`` variables; a tenant's own overrides
    (``tenantflow monitor policy TENANT --set field=value``) win over them.
    """

    column_threshold: float = 0.1  # per column: normed Wasserstein (numbers) / Jensen-Shannon (categories)
    drift_share: float = 0.5  # share of a model's feature columns that must drift for its features to drift
    # normed Wasserstein distance of the champion's scores; stationary tenants measured 0.02-0.11
    # on the test world's ten seeds, a new category 0.17 (tests/monitor)
    prediction_threshold: float = 0.15
    data_threshold: float = 0.1  # any behaviour column beyond this distance
    decay_tolerance: float = 0.15  # live HitRate@10 below (1 - this) x the holdout's: decayed
    min_rows: int = 300  # rows per window below which a drift check says "insufficient data"
    min_users: int = 50  # active users a live metric needs
    min_positives: int = 10  # churned users a live churn batch needs before its ROC-AUC is judged
    # Windowed features (up to 28 days) keep growing until a tenant's history covers the longest
    # window: a reference snapshot taken earlier would call that growth drift (seen on the demo's
    # tenant onboarded ten days before training). Feature and prediction drift wait for it.
    warmup_days: int = 28
    sample_rows: int = 20_000  # rows per window given to Evidently (big tenants stay fast)
    reference_days: int = 14  # days of events before the champion's data ended
    current_days: int = 7  # the most recent days of events
    cooldown_hours: float = 24.0  # no drift retrain within this long of the tenant's last training
    daily_budget: int = 10  # tenants retrained for drift per day, platform-wide
    watch_days: int = 7  # after a promotion, watch live metrics this long
    rollback_tolerance: float = 0.1  # roll back when live HitRate@10 < (1 - this) x the previous champion's

    @classmethod
    def from_env(cls) -> MonitorPolicy:
        return dataclass_from_env(cls, "TENANTFLOW_MONITOR_")

    @classmethod
    def for_tenant(cls, tenant_id: str, settings: Settings | None = None) -> MonitorPolicy:
        base = cls.from_env()
        overrides = tenant_overrides(tenant_id, settings)
        return replace(base, **{k: type(getattr(base, k))(v) for k, v in overrides.items()})


_STATE_SCHEMA = """
create table if not exists monitor_policies (
    tenant_id text primary key,
    overrides text not null
);
create table if not exists retrain_requests (
    id integer primary key autoincrement,
    tenant_id text not null,
    kinds text not null,
    requested_at text not null,
    monitor_run text not null,
    train_run_id text not null,
    reason text not null,
    report_paths text not null,
    status text not null check (status in ('requested', 'done', 'failed')),
    closed_at text
);
create index if not exists retrain_requests_tenant on retrain_requests (tenant_id, status);
"""


@contextmanager
def _state_db(settings: Settings) -> Iterator[sqlite3.Connection]:
    """The monitor's small control-plane tables, next to the tenant registry and the audit log."""
    settings.registry_db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(settings.registry_db, timeout=30)
    try:
        con.executescript(_STATE_SCHEMA)
        yield con
        con.commit()
    finally:
        con.close()


def tenant_overrides(tenant_id: str, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    with _state_db(settings) as con:
        row = con.execute("select overrides from monitor_policies where tenant_id = ?", [validate_slug(tenant_id)]).fetchone()
    return json.loads(row[0]) if row else {}


def set_tenant_policy(tenant_id: str, changes: dict[str, str], settings: Settings | None = None) -> MonitorPolicy:
    """Override policy fields for one tenant (values as strings from the CLI); returns the result."""
    settings = settings or get_settings()
    TenantRegistry(settings).get(tenant_id)
    known = {f.name: f for f in fields(MonitorPolicy)}
    current = tenant_overrides(tenant_id, settings)
    for k, v in changes.items():
        if k not in known:
            raise ValueError(f"tenant {tenant_id}: unknown monitor policy field {k!r}; known: {sorted(known)}")
        try:
            current[k] = type(getattr(MonitorPolicy, k))(v)
        except ValueError:
            raise ValueError(f"tenant {tenant_id}: policy field {k} needs a {type(getattr(MonitorPolicy, k)).__name__}, got {v!r}") from None
    with _state_db(settings) as con:
        con.execute("insert or replace into monitor_policies (tenant_id, overrides) values (?, ?)",
                    [tenant_id, json.dumps(current, sort_keys=True)])  # fmt: skip
    return MonitorPolicy.for_tenant(tenant_id, settings)


# ---------------------------------------------------------------- results


@dataclass
class CheckResult:
    """One row of the ``monitoring`` table."""

    tenant_id: str
    check: str  # data_drift | feature_drift | prediction_drift | performance
    kind: str  # recommender | churn | events
    metric: str  # e.g. share_drifted_columns, column:dwell_seconds, score, live_hit_rate_at_10
    value: float | None
    threshold: float | None
    drifted: bool | None  # None: could not be judged (see status)
    status: str  # ok | insufficient_data | no_reference | error | skipped
    detail: str = ""
    reference_start: date | None = None
    reference_end: date | None = None
    current_start: date | None = None
    current_end: date | None = None
    model_version: str | None = None
    report_path: str | None = None


_WAREHOUSE_DDL = """
create table if not exists monitoring (
    tenant_id varchar not null,
    checked_on date not null,
    checked_at timestamptz not null,
    "check" varchar not null,
    kind varchar not null,
    metric varchar not null,
    value double,
    threshold double,
    drifted boolean,
    status varchar not null,
    detail varchar,
    reference_start date,
    reference_end date,
    current_start date,
    current_end date,
    model_version varchar,
    report_path varchar,
    primary key (tenant_id, checked_on, "check", kind, metric)
);
create table if not exists monitoring_live_metrics (
    tenant_id varchar not null,
    kind varchar not null,
    source varchar not null,
    model_version varchar not null,
    as_of date not null,
    horizon_days integer not null,
    users_scored integer not null,
    users_active integer not null,
    users_hit integer not null,
    impressions integer not null,
    recommended_clicked integer not null,
    hit_rate_at_10 double,
    ctr double,
    roc_auc double,
    pr_auc double,
    computed_at timestamptz not null,
    primary key (tenant_id, kind, source, model_version, as_of, horizon_days)
);
"""


def report_dir(settings: Settings, region: str, tenant_id: str, day: date) -> Path:
    return (settings.reports / "monitoring" / f"region={validate_slug(region, 'region')}"
            / f"tenant={validate_slug(tenant_id)}" / f"date={day.isoformat()}")  # fmt: skip


# ---------------------------------------------------------------- drift with Evidently


def _column_problems(ref: pd.Series, cur: pd.Series) -> str | None:
    """Why a column cannot be compared, or None. Evidently raises on all-null columns and returns
    NaN for single-valued ones; both are reported here by name instead."""
    if ref.notna().sum() == 0:
        return "all values missing in the reference window"
    if cur.notna().sum() == 0:
        return "all values missing in the current window"
    if ref.nunique(dropna=True) <= 1 and cur.nunique(dropna=True) <= 1:
        same = set(ref.dropna().unique()) == set(cur.dropna().unique())
        return "a single value in both windows" if same else f"a single value, changed from {ref.dropna().iloc[0]!r} to {cur.dropna().iloc[0]!r}"
    if pd.api.types.is_numeric_dtype(ref) and ref.nunique(dropna=True) <= 1:
        return "a single value in the reference window: its spread is zero, so no normed distance exists"
    return None


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str],
                 threshold: float, html_path: Path | None = None) -> tuple[dict[str, float], dict[str, str]]:  # fmt: skip
    """Per-column drift distances (Evidently ``DataDriftPreset``) and the columns it could not judge.

    Methods are fixed, not chosen by sample size, so a verdict does not flip when a tenant grows:
    normed Wasserstein distance for numbers, Jensen-Shannon distance for categories.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    problems: dict[str, str] = {}
    num, cat = [], []
    for cols, out in ((numerical, num), (categorical, cat)):
        for c in cols:
            why = _column_problems(reference[c], current[c])
            if why:
                problems[c] = why
            else:
                out.append(c)
    if not num and not cat:
        return {}, problems
    ref = reference[num + cat].copy()
    cur = current[num + cat].copy()
    for c in cat:
        ref[c], cur[c] = ref[c].astype("string").fillna("(missing)"), cur[c].astype("string").fillna("(missing)")
    for c in num:
        ref[c], cur[c] = ref[c].astype("float64"), cur[c].astype("float64")
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    report = Report([DataDriftPreset(columns=num + cat, num_method="wasserstein", cat_method="jensenshannon",
                                     threshold=threshold)])  # fmt: skip
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        snap = report.run(reference_data=Dataset.from_pandas(ref, data_definition=definition),
                          current_data=Dataset.from_pandas(cur, data_definition=definition))  # fmt: skip
    distances: dict[str, float] = {}
    for m in snap.dict()["metrics"]:
        column = m.get("config", {}).get("column")
        if m.get("config", {}).get("type", "").endswith("ValueDrift") and column is not None:
            distances[column] = float(m["value"]) if m["value"] is not None else float("nan")
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = html_path.with_name(html_path.name + ".tmp")
        snap.save_html(str(tmp))
        os.replace(tmp, html_path)
    return distances, problems


def _sample(frame: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def _column_rows(base: dict, distances: dict[str, float], problems: dict[str, str], threshold: float,
                 new_categories: dict[str, list[str]] | None = None) -> list[CheckResult]:  # fmt: skip
    rows = []
    for col, d in sorted(distances.items()):
        extra = f"new categories: {', '.join(new_categories[col])}" if new_categories and new_categories.get(col) else ""
        if math.isnan(d):
            rows.append(CheckResult(**base, metric=f"column:{col}", value=None, threshold=threshold, drifted=None,
                                    status="error", detail="Evidently returned NaN: the distance is undefined"))  # fmt: skip
        else:
            rows.append(CheckResult(**base, metric=f"column:{col}", value=d, threshold=threshold, drifted=d > threshold,
                                    status="ok", detail=extra))  # fmt: skip
    for col, why in sorted(problems.items()):
        status = "skipped" if why == "a single value in both windows" else "error"
        rows.append(CheckResult(**base, metric=f"column:{col}", value=None, threshold=threshold, drifted=None,
                                status=status, detail=why))  # fmt: skip
    return rows


# ---------------------------------------------------------------- per tenant


@dataclass
class TenantWindows:
    """What one tenant's checks compare, read from its warehouse under the lock."""

    tenant_id: str
    region: str
    serving_cutoff: date | None
    reference_end: date | None
    events_reference: pd.DataFrame
    events_current: pd.DataFrame
    features_current: dict[str, pd.DataFrame] = field(default_factory=dict)
    live: list[dict] = field(default_factory=list)


def _serving_cutoff(con, tenant_id: str) -> date | None:
    row = con.execute("select max(cutoff_date) from int_feature_cutoffs where tenant_id = ?", [tenant_id]).fetchone()
    return row[0] if row else None


def _events(con, tenant_id: str, start: date, end: date, n: int) -> pd.DataFrame:
    """Views in [start, end): the item's topic, the dwell time and the device (a repeatable sample)."""
    return con.execute(
        f"""
        select * from (
            select e.event_date, e.dwell_seconds, i.topic, e.device
            from stg_lake__events e
            left join int_items__catalogued i on i.tenant_id = e.tenant_id and i.item_id = e.item_id
            where e.tenant_id = $t and e.event_type = 'view' and e.event_date >= $start and e.event_date < $end
            order by e.event_id
        ) using sample reservoir({int(n)} rows) repeatable (7)
        """,
        {"t": tenant_id, "start": start, "end": end},
    ).df()


def live_metrics(con, tenant_id: str, serving_cutoff: date, served_log: str | None = None) -> list[dict]:
    """HitRate@10 and CTR of each batch of recommendations, per complete horizon.

    Two sources: ``batch`` (``predictions.recommendations`` at ``as_of``, the score DAG's daily
    top-10) and ``online`` (what the API answered, from its prediction log ``served_log``, a
    glob of JSONL files; a day's answers form one batch). A batch (source, day, model version)
    is judged on the clicks in ``[as_of, as_of + horizon)``: HitRate@10 = users who clicked one
    of their recommended items / users who clicked anything (the holdout's definition); CTR =
    recommended (user, item) pairs clicked / pairs recommended. Only horizons that have fully
    passed count.
    """
    present = {r[0] for r in con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()}
    sources = []
    if "predictions.recommendations" in present:
        sources.append("select 'batch' as source, as_of, user_id, item_id, model_version from predictions.recommendations "
                       "where tenant_id = $t")  # fmt: skip
    if served_log:
        sources.append(
            f"select 'online' as source, cast(cast(\"at\" as timestamptz) as date) as as_of, user_id, unnest(items) as item_id, "
            f"model_version from read_json('{served_log.replace(chr(39), chr(39) * 2)}', format = 'newline_delimited', "
            f"columns = {{'at': 'varchar', 'tenant_id': 'varchar', 'endpoint': 'varchar', 'user_id': 'varchar', "
            f"'items': 'varchar[]', 'model_version': 'varchar', 'arm': 'varchar'}}) "
            f"where tenant_id = $t and endpoint = 'recommendations' and arm <> 'cold_start'"
        )  # fmt: skip
    churn = live_churn_metrics(con, tenant_id, serving_cutoff) if "predictions.churn_scores" in present else []
    if not sources:
        return churn
    out = []
    for h in HORIZONS:
        rows = con.execute(
            f"""
            with served as ({" union all ".join(sources)}),
            recs as (
                select distinct source, as_of, user_id, item_id, model_version from served where as_of + $h <= $cutoff
            ),
            batches as (
                select source, as_of, model_version, count(distinct user_id) as users_scored, count(*) as impressions
                from recs group by all
            ),
            clicks as (
                select distinct user_id, item_id, event_date from stg_lake__events
                where tenant_id = $t and event_type = 'click'
            ),
            active as (
                select distinct r.source, r.as_of, r.model_version, r.user_id
                from (select distinct source, as_of, model_version, user_id from recs) r
                join clicks c on c.user_id = r.user_id and c.event_date >= r.as_of and c.event_date < r.as_of + $h
            ),
            hits as (
                select r.source, r.as_of, r.model_version, r.user_id, r.item_id
                from recs r
                join clicks c on c.user_id = r.user_id and c.item_id = r.item_id
                    and c.event_date >= r.as_of and c.event_date < r.as_of + $h
                group by all
            )
            select b.source, b.as_of, b.model_version, b.users_scored, b.impressions,
                   (select count(*) from active a where (a.source, a.as_of, a.model_version) = (b.source, b.as_of, b.model_version)),
                   (select count(distinct user_id) from hits x where (x.source, x.as_of, x.model_version) = (b.source, b.as_of, b.model_version)),
                   (select count(*) from hits x where (x.source, x.as_of, x.model_version) = (b.source, b.as_of, b.model_version))
            from batches b order by b.as_of, b.source, b.model_version
            """,
            {"t": tenant_id, "h": h, "cutoff": serving_cutoff},
        ).fetchall()
        for source, as_of, version, scored, impressions, active, hit, clicked in rows:
            out.append({"tenant_id": tenant_id, "kind": "recommender", "source": source, "model_version": str(version),
                        "as_of": as_of, "horizon_days": h, "users_scored": scored, "users_active": active,
                        "users_hit": hit, "impressions": impressions, "recommended_clicked": clicked,
                        "hit_rate_at_10": hit / active if active else None,
                        "ctr": clicked / impressions if impressions else None, "roc_auc": None, "pr_auc": None})  # fmt: skip
    return out + churn


def live_churn_metrics(con, tenant_id: str, serving_cutoff: date) -> list[dict]:
    """ROC-AUC and PR-AUC of each batch of churn scores once its churn window has passed.

    A batch (``predictions.churn_scores`` at ``as_of``, one model version) is labelled as the
    churn mart labels: a user churned if they cancelled within ``[as_of, as_of + 14 days)``.
    Rows: ``users_scored`` = ``users_active`` = users scored, ``users_hit`` = users who churned.
    """
    from ml.evaluate import classification_metrics

    frame = con.execute(
        """
        with cancelled as (
            select user_id, min(event_date) as cancelled_on from stg_lake__events
            where tenant_id = $t and event_type = 'cancel_subscription' group by user_id
        )
        select s.as_of, s.model_version, s.churn_probability,
               coalesce(c.cancelled_on >= s.as_of and c.cancelled_on < s.as_of + $w, false) as churned
        from predictions.churn_scores s
        left join cancelled c on c.user_id = s.user_id
        where s.tenant_id = $t and s.as_of + $w <= $cutoff
        """,
        {"t": tenant_id, "w": CHURN_WINDOW_DAYS, "cutoff": serving_cutoff},
    ).df()
    out = []
    for (day, version), g in frame.groupby(["as_of", "model_version"], sort=True):
        as_of = pd.Timestamp(day).date()
        m = classification_metrics(g["churned"].to_numpy(), g["churn_probability"].to_numpy())
        out.append({"tenant_id": tenant_id, "kind": "churn", "source": "batch", "model_version": str(version),
                    "as_of": as_of, "horizon_days": CHURN_WINDOW_DAYS, "users_scored": len(g), "users_active": len(g),
                    "users_hit": int(g["churned"].sum()), "impressions": 0, "recommended_clicked": 0,
                    "hit_rate_at_10": None, "ctr": None, "roc_auc": m.get("roc_auc"), "pr_auc": m.get("pr_auc")})  # fmt: skip
    return out


def served_log_glob(settings: Settings, region: str, tenant_id: str) -> str | None:
    """The API's prediction log files of a tenant (``ml.online.PredictionLog``), or None when there are none."""
    root = settings.home / "prediction_log" / f"region={validate_slug(region, 'region')}" / f"tenant={validate_slug(tenant_id)}"
    return str(root / "date=*" / "*.jsonl") if any(root.glob("date=*/*.jsonl")) else None


def read_windows(con, tenant_id: str, region: str, reference_end: date | None, policy: MonitorPolicy,
                 served_log: str | None = None) -> TenantWindows:  # fmt: skip
    cutoff = _serving_cutoff(con, tenant_id)
    empty = pd.DataFrame(columns=["event_date", "dwell_seconds", "topic", "device"])
    w = TenantWindows(tenant_id, region, cutoff, reference_end, empty, empty)
    if cutoff is None:
        return w
    w.events_current = _events(con, tenant_id, cutoff - timedelta(days=policy.current_days), cutoff, policy.sample_rows)
    if reference_end is not None:
        w.events_reference = _events(con, tenant_id, reference_end - timedelta(days=policy.reference_days), reference_end,
                                     policy.sample_rows)  # fmt: skip
    for kind, mart in (("recommender", "ranking_candidates"), ("churn", "user_features")):
        w.features_current[kind] = con.execute(
            f"select * from (select * from {mart} where tenant_id = ? order by all) "
            f"using sample reservoir({int(policy.sample_rows)} rows) repeatable (7)",
            [tenant_id],
        ).df()
    w.live = live_metrics(con, tenant_id, cutoff, served_log)
    return w


def check_tenant(w: TenantWindows, champions: dict[str, Any], policy: MonitorPolicy, settings: Settings,
                 today: date, kinds: tuple[str, ...] = ()) -> list[CheckResult]:  # fmt: skip
    """Every check for one tenant; a check that cannot run says why and the others still run."""
    from ml.kinds import get_kind

    out: list[CheckResult] = []
    rdir = report_dir(settings, w.region, w.tenant_id, today)
    tid = w.tenant_id
    if w.serving_cutoff is None:
        return [CheckResult(tid, "data_drift", "events", "rows", 0, policy.min_rows, None, "insufficient_data",
                            "no features built for this tenant yet")]  # fmt: skip
    cur_start = w.serving_cutoff - timedelta(days=policy.current_days)
    ref_start = w.reference_end - timedelta(days=policy.reference_days) if w.reference_end else None
    windows = {"reference_start": ref_start, "reference_end": w.reference_end, "current_start": cur_start,
               "current_end": w.serving_cutoff}  # fmt: skip

    # data drift: the tenant's behaviour
    base = {"tenant_id": tid, "check": "data_drift", "kind": "events", **windows}
    if w.reference_end is None:
        out.append(CheckResult(**base, metric="share_drifted_columns", value=None, threshold=None, drifted=None,
                               status="no_reference", detail="no champion snapshot to compare with"))  # fmt: skip
    elif w.reference_end >= w.serving_cutoff:
        out.append(CheckResult(**base, metric="share_drifted_columns", value=None, threshold=None, drifted=False,
                               status="insufficient_data", detail="no new data since the champion was trained"))  # fmt: skip
    elif min(len(w.events_reference), len(w.events_current)) < policy.min_rows:
        out.append(CheckResult(**base, metric="rows", value=float(min(len(w.events_reference), len(w.events_current))),
                               threshold=policy.min_rows, drifted=None, status="insufficient_data",
                               detail=f"{len(w.events_reference)} reference and {len(w.events_current)} current views "
                                      f"(< {policy.min_rows})"))  # fmt: skip
    else:
        path = rdir / "events.html"
        dist, problems = drift_report(w.events_reference, w.events_current, EVENT_COLUMNS["numerical"],
                                      EVENT_COLUMNS["categorical"], policy.data_threshold, path)  # fmt: skip
        seen = {c: set(w.events_reference[c].dropna().astype(str)) for c in EVENT_COLUMNS["categorical"]}
        new = {c: sorted(set(w.events_current[c].dropna().astype(str)) - seen[c]) for c in EVENT_COLUMNS["categorical"]}
        rows = _column_rows({**base, "report_path": str(path)}, dist, problems, policy.data_threshold, new)
        judged = [r for r in rows if r.status == "ok"]
        drifted = [r.metric.removeprefix("column:") for r in judged if r.drifted]
        out += rows
        out.append(CheckResult(**base, metric="drifted_columns", value=float(len(drifted)), threshold=1.0,
                               drifted=bool(drifted) if judged else None, status="ok" if judged else "error",
                               detail=", ".join(drifted) or ("" if judged else "no column could be compared"),
                               report_path=str(path)))  # fmt: skip

    # per model kind: features, predictions, performance
    for kind_name in sorted(set(kinds) - set(champions)):
        out.append(CheckResult(tid, "feature_drift", kind_name, "share_drifted_columns", None, None, None, "no_reference",
                               f"no {kind_name} champion yet: nothing to monitor", **windows))  # fmt: skip
    for kind_name, champ in champions.items():
        kind = get_kind(kind_name)
        version = str(champ["version"].version)
        kbase = {"tenant_id": tid, "kind": kind_name, "model_version": version, **windows}
        snap = champ.get("snapshot")
        ref_path = snap.reference(kind_name) if snap is not None else None
        current = w.features_current.get(kind_name, pd.DataFrame())
        if ref_path is None or not ref_path.exists():
            out.append(CheckResult(**kbase, check="feature_drift", metric="share_drifted_columns", value=None,
                                   threshold=policy.drift_share, drifted=None, status="no_reference",
                                   detail="the champion's snapshot has no reference rows (trained before monitoring existed);"
                                          " the next training adds them"))  # fmt: skip
        elif snap is not None and snap.history_days < policy.warmup_days:
            why = (f"the reference was taken after {snap.history_days} days of history, before the {policy.warmup_days}-day "
                   f"feature windows filled: their growth is not drift; judged once a champion is trained on "
                   f"{policy.warmup_days}+ days")  # fmt: skip
            for check in ("feature_drift", "prediction_drift"):
                out.append(CheckResult(**kbase, check=check, metric="reference_history_days", value=float(snap.history_days),
                                       threshold=float(policy.warmup_days), drifted=None, status="insufficient_data",
                                       detail=why))  # fmt: skip
        elif len(current) < policy.min_rows:
            out.append(CheckResult(**kbase, check="feature_drift", metric="rows", value=float(len(current)),
                                   threshold=policy.min_rows, drifted=None, status="insufficient_data",
                                   detail=f"{len(current)} current rows (< {policy.min_rows})"))  # fmt: skip
        else:
            reference = _sample(pd.read_parquet(ref_path), policy.sample_rows)
            if len(reference) < policy.min_rows:
                out.append(CheckResult(**kbase, check="feature_drift", metric="rows", value=float(len(reference)),
                                       threshold=policy.min_rows, drifted=None, status="insufficient_data",
                                       detail=f"{len(reference)} reference rows (< {policy.min_rows})"))  # fmt: skip
            else:
                features = champ["features"]
                path = rdir / f"{kind_name}.html"
                ref = reference[features].copy()
                cur = current[features].copy()
                booster = champ["booster"]
                ref["prediction"] = booster.predict(kind.matrix(reference, features), num_threads=1)
                cur["prediction"] = booster.predict(kind.matrix(current, features), num_threads=1)
                dist, problems = drift_report(ref, cur, [*features, "prediction"], [], policy.column_threshold, path)
                fbase = {**kbase, "check": "feature_drift", "report_path": str(path)}
                pred = dist.pop("prediction", None)
                pred_problem = problems.pop("prediction", None)
                rows = _column_rows(fbase, dist, problems, policy.column_threshold)
                judged = [r for r in rows if r.status == "ok"]
                share = sum(bool(r.drifted) for r in judged) / len(judged) if judged else None
                out += rows
                out.append(CheckResult(**fbase, metric="share_drifted_columns", value=share, threshold=policy.drift_share,
                                       drifted=(share >= policy.drift_share) if share is not None else None,
                                       status="ok" if share is not None else "error",
                                       detail=", ".join(r.metric.removeprefix("column:") for r in judged if r.drifted)))  # fmt: skip
                pbase = {**kbase, "check": "prediction_drift", "report_path": str(path)}
                if pred is None or math.isnan(pred):
                    out.append(CheckResult(**pbase, metric="score", value=None, threshold=policy.prediction_threshold,
                                           drifted=None, status="error",
                                           detail=pred_problem or "Evidently returned NaN for the score distance"))  # fmt: skip
                else:
                    out.append(CheckResult(**pbase, metric="score", value=pred, threshold=policy.prediction_threshold,
                                           drifted=pred > policy.prediction_threshold, status="ok"))  # fmt: skip
        out.append(_performance(kbase, kind_name, champ, w, policy))
    return out


def _performance(kbase: dict, kind_name: str, champ: dict, w: TenantWindows, policy: MonitorPolicy) -> CheckResult:
    base = {**kbase, "check": "performance"}
    if kind_name == "churn":
        return _churn_performance(base, champ, w, policy)
    holdout = champ.get("holdout_metric")
    version = kbase["model_version"]
    batches = [m for m in w.live if m["kind"] == "recommender" and m["horizon_days"] == LABEL_WINDOW_DAYS
               and m["model_version"] == version]  # fmt: skip
    threshold = holdout * (1 - policy.decay_tolerance) if holdout is not None else None
    if holdout is None:
        return CheckResult(**base, metric="live_hit_rate_at_10", value=None, threshold=None, drifted=None,
                           status="no_reference", detail="the champion's run has no holdout hit_rate_at_10")  # fmt: skip
    if not batches:
        return CheckResult(**base, metric="live_hit_rate_at_10", value=None, threshold=threshold, drifted=None,
                           status="insufficient_data",
                           detail=f"no recommendations by v{version} with {LABEL_WINDOW_DAYS} days of clicks after them yet")  # fmt: skip
    last = batches[-1]
    if last["users_active"] < policy.min_users:
        return CheckResult(**base, metric="live_hit_rate_at_10", value=last["hit_rate_at_10"], threshold=threshold,
                           drifted=None, status="insufficient_data",
                           detail=f"{last['users_active']} active users after {last['as_of']} (< {policy.min_users})")  # fmt: skip
    value = float(last["hit_rate_at_10"])
    return CheckResult(**base, metric="live_hit_rate_at_10", value=value, threshold=threshold, drifted=value < threshold,
                       status="ok", detail=f"batch of {last['as_of']}: {last['users_hit']}/{last['users_active']} active "
                                           f"users clicked a recommended item; holdout {holdout:.3f}")  # fmt: skip


def _churn_performance(base: dict, champ: dict, w: TenantWindows, policy: MonitorPolicy) -> CheckResult:
    """Live ROC-AUC of the champion's last churn batch whose window has passed, against its holdout's.

    ROC-AUC, not the headline PR-AUC: PR-AUC moves with the churn rate, which differs between a
    holdout and a live window without the model getting any worse.
    """
    version = base["model_version"]
    holdout = (champ.get("holdout_metrics") or {}).get("roc_auc")
    if holdout is None:
        return CheckResult(**base, metric="live_roc_auc", value=None, threshold=None, drifted=None,
                           status="no_reference", detail="the champion's run has no holdout roc_auc")  # fmt: skip
    threshold = holdout * (1 - policy.decay_tolerance)
    batches = [m for m in w.live if m["kind"] == "churn" and m["model_version"] == version]
    if not batches:
        return CheckResult(**base, metric="live_roc_auc", value=None, threshold=threshold, drifted=None,
                           status="insufficient_data",
                           detail=f"no churn scores by v{version} with {CHURN_WINDOW_DAYS} days of cancellations after them yet")  # fmt: skip
    last = batches[-1]
    if last["users_hit"] < policy.min_positives or last["roc_auc"] is None:
        return CheckResult(**base, metric="live_roc_auc", value=last["roc_auc"], threshold=threshold, drifted=None,
                           status="insufficient_data",
                           detail=f"{last['users_hit']} of {last['users_scored']} users scored on {last['as_of']} churned "
                                  f"(< {policy.min_positives} to judge a ranking)")  # fmt: skip
    value = float(last["roc_auc"])
    return CheckResult(**base, metric="live_roc_auc", value=value, threshold=threshold, drifted=value < threshold,
                       status="ok", detail=f"batch of {last['as_of']}: {last['users_hit']}/{last['users_scored']} churned; "
                                           f"live pr_auc {last['pr_auc']:.3f}; holdout roc_auc {holdout:.3f}")  # fmt: skip


def _champions(tenant_id: str, region: str, kinds: tuple[str, ...], settings: Settings) -> dict[str, dict]:
    """The tenant's champions with what the checks need: booster, features, snapshot, holdout metric."""
    from ml import snapshots
    from ml.kinds import get_kind
    from ml.train import load_booster

    out = {}
    c = registry.client(settings)
    for kind_name in kinds:
        name = registry.model_name(kind_name, tenant_id)
        mv = registry.version_by_alias(name, registry.CHAMPION, settings)
        if mv is None:
            continue
        snap = None
        sid = mv.tags.get("snapshot_id")
        if sid and mv.tags.get("tenant_id") == tenant_id:
            try:
                snap = snapshots.load(settings, region, tenant_id, sid)
            except FileNotFoundError:
                snap = None
        if snap is None:  # a global-served tenant, or a pruned snapshot: its latest own snapshot
            snap = snapshots.latest(settings, region, tenant_id)
        run_id = mv.tags.get("run_id") or mv.run_id
        metrics = c.get_run(run_id).data.metrics if run_id else {}
        out[kind_name] = {"version": mv, "booster": load_booster(name, str(mv.version), settings),
                          "features": json.loads(mv.tags["features"]), "snapshot": snap, "run_id": run_id,
                          "holdout_metric": metrics.get(get_kind(kind_name).headline), "holdout_metrics": dict(metrics)}  # fmt: skip
    return out


def monitor_warehouse(wh: Warehouse, settings: Settings | None = None, tenants: list[str] | None = None,
                      today: date | None = None) -> dict:  # fmt: skip
    """Run every check for this warehouse's tenants; write the ``monitoring`` rows; link the reports.

    One tenant's failure becomes an ``error`` row for that tenant; the others carry on.
    """
    import duckdb

    settings = settings or get_settings()
    today = today or datetime.now(UTC).date()
    reg = TenantRegistry(settings)
    wanted = [reg.get(t) for t in wh.tenants if tenants is None or t in tenants]
    path = wh.path(settings)
    if not path.exists():
        return {"warehouse": wh.key, "tenants": {}}
    champions: dict[str, dict] = {}
    for t in wanted:
        try:
            champions[t.tenant_id] = _champions(t.tenant_id, t.region, t.model_kinds, settings)
        except Exception as exc:  # noqa: BLE001 — MLflow trouble for one tenant is that tenant's error row
            log.exception("tenant %s: cannot load champions", t.tenant_id)
            champions[t.tenant_id] = {"error": f"{type(exc).__name__}: {exc}"}
    policies = {t.tenant_id: MonitorPolicy.for_tenant(t.tenant_id, settings) for t in wanted}

    windows: dict[str, TenantWindows | str] = {}
    with warehouse_lock(path):
        con = duckdb.connect(str(path), read_only=True)
        try:
            for t in wanted:
                champs = champions[t.tenant_id]
                ref_end = None
                if "error" not in champs:
                    snaps = [c["snapshot"] for c in champs.values() if c.get("snapshot") is not None]
                    ends = [date.fromisoformat(s.serving_cutoff) for s in snaps if s.serving_cutoff]
                    ref_end = max(ends) if ends else None
                try:
                    windows[t.tenant_id] = read_windows(con, t.tenant_id, t.region, ref_end, policies[t.tenant_id],
                                                        served_log_glob(settings, t.region, t.tenant_id))  # fmt: skip
                except duckdb.Error as exc:
                    windows[t.tenant_id] = f"reading the warehouse failed: {type(exc).__name__}: {exc}"
        finally:
            con.close()

    results: list[CheckResult] = []
    live_rows: list[dict] = []
    for t in wanted:
        tid = t.tenant_id
        t0 = time.perf_counter()
        w = windows[tid]
        champs = champions[tid]
        try:
            if isinstance(w, str) or "error" in champs:
                raise RuntimeError(w if isinstance(w, str) else champs["error"])
            live_rows += w.live
            rows = check_tenant(w, champs, policies[tid], settings, today, t.model_kinds)
        except Exception as exc:  # noqa: BLE001 — recorded for this tenant, then the next one
            log.exception("tenant %s: monitoring failed", tid)
            rows = [CheckResult(tid, "monitor", "all", "error", None, None, None, "error", f"{type(exc).__name__}: {exc}")]
        results += rows
        _link_reports(rows, champs if "error" not in champs else {}, settings)
        log.info("tenant %s: %d checks in %.2fs, drifted: %s", tid, len(rows), time.perf_counter() - t0,
                 sorted({f"{r.check}/{r.kind}" for r in rows if r.drifted and not r.metric.startswith("column:")}))

    _write(path, results, live_rows, today)
    return {"warehouse": wh.key, "checked_on": today.isoformat(),
            "tenants": {t.tenant_id: summarise([r for r in results if r.tenant_id == t.tenant_id]) for t in wanted}}


def summarise(rows: list[CheckResult]) -> dict:
    """One tenant's verdict: drifted checks (the headline rows, not single columns) and problems."""
    headline = [r for r in rows if not r.metric.startswith("column:")]
    drifted = [r for r in headline if r.drifted]
    kinds = sorted({r.kind for r in drifted if r.kind in KINDS} or ({*KINDS} if drifted else set()))
    return {
        "drifted": bool(drifted),
        "kinds": kinds,
        "checks": [f"{r.check}/{r.kind}:{r.metric}" for r in drifted],
        "reasons": [f"{r.check} {r.kind} {r.metric}={r.value:.3f} (threshold {r.threshold:.3f}) {r.detail}".strip()
                    for r in drifted if r.value is not None and r.threshold is not None],  # fmt: skip
        "problems": [f"{r.check} {r.kind} {r.metric}: {r.status}: {r.detail}" for r in rows if r.status in ("error",)],
        "insufficient": [f"{r.check} {r.kind}: {r.detail}" for r in headline if r.status in ("insufficient_data", "no_reference")],
        "reports": sorted({r.report_path for r in rows if r.report_path}),
    }


def _link_reports(rows: list[CheckResult], champs: dict, settings: Settings) -> None:
    """Log each report on the champion's MLflow run (under ``monitoring/<date>/``) and tag the run."""
    c = registry.client(settings)
    by_kind = {r.kind: r.report_path for r in rows if r.report_path}
    for kind_name, champ in champs.items():
        run_id = champ.get("run_id")
        if not run_id:
            continue
        for path in {by_kind.get(kind_name), by_kind.get("events")} - {None}:
            p = Path(str(path))
            if p.exists():
                try:
                    c.log_artifact(run_id, str(p), artifact_path=f"monitoring/{p.parent.name.removeprefix('date=')}")
                    c.set_tag(run_id, f"monitoring.report.{p.stem}", str(p))
                except Exception:  # noqa: BLE001 — the report stays on disk and in the table
                    log.exception("could not log %s on run %s", p, run_id)


def _write(path: Path, results: list[CheckResult], live_rows: list[dict], today: date) -> None:
    import duckdb

    frame = pd.DataFrame([asdict(r) for r in results])
    with warehouse_lock(path):
        con = duckdb.connect(str(path))
        try:
            cols = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                              "where table_name = 'monitoring_live_metrics'").fetchall()}  # fmt: skip
            if cols and cols != LIVE_COLUMNS:  # made by an older version: derived data, recomputed below
                con.execute("drop table monitoring_live_metrics")
            con.execute(_WAREHOUSE_DDL)
            con.execute("begin")
            for tid in sorted(frame["tenant_id"].unique()) if not frame.empty else []:
                con.execute("delete from monitoring where tenant_id = ? and checked_on = ?", [tid, today])
            if not frame.empty:
                frame["checked_on"] = today
                frame["checked_at"] = pd.Timestamp.now(tz="UTC")
                frame["drifted"] = frame["drifted"].astype("boolean")
                con.register("results", frame)
                con.execute("""insert into monitoring select tenant_id, checked_on, checked_at, "check", kind, metric,
                               value, threshold, drifted, status, detail, reference_start, reference_end, current_start,
                               current_end, model_version, report_path from results""")
                con.unregister("results")
            if live_rows:
                live = pd.DataFrame(live_rows).assign(computed_at=pd.Timestamp.now(tz="UTC"))
                con.register("live", live)
                con.execute("insert or replace into monitoring_live_metrics by name select * from live")
                con.unregister("live")
            con.execute("commit")
        finally:
            con.close()


# ---------------------------------------------------------------- decisions


def _now() -> datetime:
    return datetime.now(UTC)


def open_requests(settings: Settings, max_age_hours: float = 12.0) -> dict[str, dict]:
    """Tenants with a drift retrain requested and not finished (stale ones expire)."""
    since = (_now() - timedelta(hours=max_age_hours)).isoformat()
    with _state_db(settings) as con:
        rows = con.execute("select tenant_id, train_run_id, requested_at from retrain_requests "
                           "where status = 'requested' and requested_at >= ?", [since]).fetchall()  # fmt: skip
    return {t: {"train_run_id": r, "requested_at": a} for t, r, a in rows}


def requests_today(settings: Settings) -> int:
    since = (_now() - timedelta(days=1)).isoformat()
    with _state_db(settings) as con:
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
        except Exception:  # noqa: BLE001 — no such model yet
            continue
        for v in versions:
            at = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)
            latest = at if latest is None or at > latest else latest
    return latest


def decide(summaries: dict[str, dict], monitor_run: str, settings: Settings | None = None) -> dict | None:
    """The conf of one ``train`` run for the tenants that drifted and may be retrained now, or None.

    Skipped, with the reason logged and returned: tenants in cooldown, tenants whose retrain is
    still open, and tenants beyond the day's budget (most drifted checks first).
    """
    settings = settings or get_settings()
    open_ = open_requests(settings)
    budget_left = MonitorPolicy.from_env().daily_budget - requests_today(settings)
    candidates, skipped = [], {}
    for tid, s in sorted(summaries.items(), key=lambda kv: (-len(kv[1].get("checks", [])), kv[0])):
        if not s.get("drifted"):
            continue
        policy = MonitorPolicy.for_tenant(tid, settings)
        if tid in open_:
            skipped[tid] = f"a drift retrain is already open ({open_[tid]['train_run_id']})"
            continue
        trained = last_trained_at(tid, s["kinds"], settings)
        if trained is not None and _now() - trained < timedelta(hours=policy.cooldown_hours):
            skipped[tid] = f"cooldown: last trained {trained:%Y-%m-%d %H:%M} UTC (< {policy.cooldown_hours:g} h ago)"
            continue
        if len(candidates) >= budget_left:
            skipped[tid] = f"daily retrain budget of {MonitorPolicy.from_env().daily_budget} tenants used up"
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
    with _state_db(settings) as con:
        for t in candidates:
            con.execute(
                "insert into retrain_requests (tenant_id, kinds, requested_at, monitor_run, train_run_id, reason, report_paths, status)"
                " values (?, ?, ?, ?, ?, ?, ?, 'requested')",
                [t, json.dumps(summaries[t]["kinds"]), now, monitor_run, train_run_id, "; ".join(summaries[t]["reasons"])[:2000],
                 json.dumps(reports[t])],
            )  # fmt: skip
    return {"tenants": candidates, "kinds": kinds, "reason": "drift", "force": True, "reports": reports,
            "drift": {t: summaries[t]["reasons"] for t in candidates}, "skipped": skipped,
            "train_run_id": train_run_id}  # fmt: skip


def close_requests(train_run_id: str, results: list[dict], settings: Settings | None = None) -> int:
    """Mark the drift requests served by this train run done (or failed, per tenant)."""
    settings = settings or get_settings()
    failed = {r["tenant_id"] for r in results if r.get("error")}
    with _state_db(settings) as con:
        rows = con.execute("select id, tenant_id from retrain_requests where train_run_id = ? and status = 'requested'",
                           [train_run_id]).fetchall()  # fmt: skip
        for rid, tid in rows:
            con.execute("update retrain_requests set status = ?, closed_at = ? where id = ?",
                        ["failed" if tid in failed else "done", _now().isoformat(), rid])  # fmt: skip
    return len(rows)


def retrain_history(tenant_id: str | None = None, settings: Settings | None = None) -> list[dict]:
    settings = settings or get_settings()
    sql = "select tenant_id, kinds, requested_at, train_run_id, reason, report_paths, status, closed_at from retrain_requests"
    args = []
    if tenant_id:
        sql += " where tenant_id = ?"
        args.append(validate_slug(tenant_id))
    with _state_db(settings) as con:
        rows = con.execute(sql + " order by id", args).fetchall()
    keys = ("tenant_id", "kinds", "requested_at", "train_run_id", "reason", "report_paths", "status", "closed_at")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:  # stored as JSON text
        r["kinds"], r["report_paths"] = json.loads(r["kinds"]), json.loads(r["report_paths"])
    return out


def watch_promotions(live: pd.DataFrame, settings: Settings | None = None, today: date | None = None) -> list[dict]:
    """Roll back recent promotions whose live HitRate@10 fell below the champion they replaced.

    ``live`` holds ``monitoring_live_metrics`` rows (next-day horizon). A promotion is watched for
    ``watch_days``; the new champion is judged on its batches, the previous one on its batches
    before the promotion, each needing ``min_users`` active users in total.
    """
    settings = settings or get_settings()
    now = _now()
    actions = []
    horizon = HORIZONS[0]
    live = live[(live["horizon_days"] == horizon) & (live["kind"] == "recommender")] if not live.empty else live
    for tid in sorted(live["tenant_id"].unique()) if not live.empty else []:
        policy = MonitorPolicy.for_tenant(tid, settings)
        moves = [e for e in registry.audit_log(settings, tid, "recommender") if e.action in ("promote", "rollback")]
        if not moves or moves[-1].action != "promote" or not moves[-1].from_version:
            continue  # nothing promoted over an earlier champion, or already rolled back
        last = moves[-1]
        promoted_at = datetime.fromisoformat(last.at.replace("Z", "+00:00"))
        if now - promoted_at > timedelta(days=policy.watch_days):
            continue
        mine = live[(live["tenant_id"] == tid)]
        new_rate, new_users = _pooled_hit_rate(mine, str(last.to_version))
        old_rate, old_users = _pooled_hit_rate(mine, str(last.from_version))
        if new_rate is None or old_rate is None or min(new_users, old_users) < policy.min_users:
            continue
        if new_rate < old_rate * (1 - policy.rollback_tolerance):
            reason = (f"auto-rollback: live hit_rate_at_10 (next day) of v{last.to_version} is {new_rate:.3f} over "
                      f"{new_users} active users, below v{last.from_version}'s {old_rate:.3f} over {old_users} "
                      f"(tolerance {policy.rollback_tolerance:.0%})")  # fmt: skip
            entry = registry.rollback("recommender", tid, reason, settings, who="monitor")
            log.warning("tenant %s: %s", tid, reason)
            actions.append({"tenant_id": tid, "kind": "recommender", "from_version": entry.from_version,
                            "to_version": entry.to_version, "reason": reason})  # fmt: skip
    return actions


def _pooled_hit_rate(live: pd.DataFrame, version: str) -> tuple[float | None, int]:
    rows = live[live["model_version"] == version]
    active = int(rows["users_active"].sum())
    return (float(rows["users_hit"].sum()) / active if active else None), active


def read_live_metrics(warehouse_keys: list[str], settings: Settings | None = None) -> pd.DataFrame:
    """The ``monitoring_live_metrics`` rows of these warehouses (empty where none were computed yet)."""
    import duckdb

    from ml.tenants import warehouse_path

    settings = settings or get_settings()
    frames = []
    for key in warehouse_keys:
        path = warehouse_path(settings, key)
        if not path.exists():
            continue
        with warehouse_lock(path):
            con = duckdb.connect(str(path), read_only=True)
            try:
                frames.append(con.execute("select * from monitoring_live_metrics").df())
            except duckdb.CatalogException:
                pass
            finally:
                con.close()
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latest_results(settings: Settings, tenant_id: str, warehouse_key: str) -> dict | None:
    """The ``drift`` part of the status contract, from the warehouse's ``monitoring`` table."""
    import duckdb

    from ml.tenants import warehouse_path

    path = warehouse_path(settings, warehouse_key)
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute(
            """select checked_at, "check", kind, metric, value, threshold, drifted, status, detail, report_path
               from monitoring where tenant_id = ? and checked_on = (select max(checked_on) from monitoring where tenant_id = ?)
               and metric not like 'column:%'""",
            [tenant_id, tenant_id],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    if not rows:
        return None
    checks = [dict(zip(("checked_at", "check", "kind", "metric", "value", "threshold", "drifted", "status", "detail",
                        "report_path"), r, strict=True)) for r in rows]  # fmt: skip
    return {
        "last_checked_at": max(c["checked_at"] for c in checks).isoformat(),
        "drifted": any(c["drifted"] for c in checks),
        "checks": [{**c, "checked_at": c["checked_at"].isoformat()} for c in checks],
        "report_path": next((c["report_path"] for c in checks if c["drifted"] and c["report_path"]),
                            next((c["report_path"] for c in checks if c["report_path"]), None)),
    }
