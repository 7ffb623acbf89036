"""Churn: which users churn within the tenant's churn window after a cutoff, against recency.

Churn is the tenant's (``int_tenant_churn_definitions``): a subscription product's users churn
by cancelling; a tenant that sends no cancellations (a shop, a ratings site, a click-only feed)
has its users churn by inactivity, no event in the window. The window is the tenant's too
(``int_tenant_windows``: its ``churn_window_days``, or whole weeks covering three of its users'
typical gaps, 14 to 91 days).

A LightGBM binary classifier on the user features of ``churn_examples``; the baseline ranks users
by days since their last activity and competes for champion as the ``recency`` family (that ranking
calibrated to probabilities, :mod:`ml.models.servable_baseline`): a classifier is served only where
it beats recency beyond chance. The API answers ``POST /v1/churn-scores``; the score DAG
writes ``predictions.churn_scores``; the monitor judges each batch's ROC-AUC once its churn
window has passed.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml.core.prediction_log import ServedLog
from ml.core.tenants import Tenant
from ml.data.publish import OnlineMart
from ml.models import evaluate
from ml.models.kinds._user_scores import score_users
from ml.models.kinds._windows import batch_horizon, tenant_window
from ml.models.kinds.base import (
    COMMON_PARAMS,
    DecayPolicy,
    Endpoint,
    LiveMonitoring,
    ModelKind,
    RollbackWatch,
    Served,
    ServingContext,
    Verdict,
)

CHURN_WINDOW_DAYS = 14  # dbt var churn_window_days: the window of a warehouse built before int_tenant_windows
USER_FEATURES = "user_features"


def _metrics(frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None) -> dict[str, float]:
    return evaluate.classification_metrics(frame["is_churned"].to_numpy(), scores)


def _recency(frame: pd.DataFrame) -> np.ndarray:
    """The longer since a user's last activity, the likelier they churn."""
    return frame["days_since_last_activity"].to_numpy(dtype=np.float64)


def _rows(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    rows = frame[["tenant_id", "cutoff_date", "user_id"]].rename(columns={"cutoff_date": "as_of"})
    return rows.assign(churn_probability=scores)


_DDL = """
create table if not exists predictions.churn_scores (
    tenant_id varchar not null,
    as_of date not null,
    user_id varchar not null,
    churn_probability double not null,
    horizon_days integer,
    model_name varchar not null,
    model_version varchar not null,
    trained_on varchar not null,
    scored_at timestamptz not null,
    primary key (tenant_id, as_of, user_id)
)
"""


def live_metrics(
    con: Any, tenant: Tenant, serving_cutoff: date, served_log: ServedLog | None = None
) -> list[dict[str, Any]]:
    """ROC-AUC and PR-AUC of each batch of churn scores once its churn window has passed.

    A batch (``predictions.churn_scores`` at ``as_of``, one model version) is labelled as the churn
    mart labels, by the tenant's definition (``int_tenant_churn_definitions``): a user churned if
    they cancelled within ``[as_of, as_of + window)``, or, for a tenant without cancellations, had
    no event in it; the window is the one the batch was scored for (its ``horizon_days``; the
    tenant's churn window in ``int_tenant_windows`` for a batch scored before horizons were
    recorded). Rows: ``users_scored`` = ``users_active`` = users scored, ``users_hit`` =
    users who churned.
    """
    if not con.execute(
        "select count(*) from information_schema.tables where table_schema = 'predictions' "
        "and table_name = 'churn_scores'"
    ).fetchone()[0]:
        return []
    window = tenant_window(con, tenant.tenant_id, "churn_window_days", CHURN_WINDOW_DAYS)
    horizon = batch_horizon(con, "predictions.churn_scores", "$w")
    frame = con.execute(
        f"""
        with cancelled as (
            select user_id, min(event_date) as cancelled_on from stg_lake__events
            where tenant_id = $t and event_type = 'cancel_subscription' group by user_id
        ),
        scored as (
            select *, {horizon} as horizon from predictions.churn_scores s
            where tenant_id = $t and as_of + {horizon} <= $cutoff
        ),
        returned as (
            select distinct s.as_of, s.user_id from scored s
            join int_user_activity__daily a on a.tenant_id = $t and a.user_id = s.user_id
                and a.activity_date >= s.as_of and a.activity_date < s.as_of + s.horizon
        ),
        definition as (select churn_definition from int_tenant_churn_definitions where tenant_id = $t)
        select s.as_of, s.model_version, s.horizon as horizon_days, s.churn_probability,
               case when (select churn_definition from definition) = 'cancellation'
                    then coalesce(c.cancelled_on >= s.as_of and c.cancelled_on < s.as_of + s.horizon, false)
                    else r.user_id is null end as churned
        from scored s
        left join cancelled c on c.user_id = s.user_id
        left join returned r on r.as_of = s.as_of and r.user_id = s.user_id
        """,
        {"t": tenant.tenant_id, "w": window, "cutoff": serving_cutoff},
    ).df()
    out = []
    for (day, version, days), g in frame.groupby(["as_of", "model_version", "horizon_days"], sort=True):
        m = evaluate.classification_metrics(g["churned"].to_numpy(), g["churn_probability"].to_numpy())
        out.append(
            {
                "tenant_id": tenant.tenant_id,
                "kind": "churn",
                "source": "batch",
                "model_version": str(version),
                "as_of": pd.Timestamp(day).date(),
                "horizon_days": int(days),
                "users_scored": len(g),
                "users_active": len(g),
                "users_hit": int(g["churned"].sum()),
                "roc_auc": m.get("roc_auc"),
                "pr_auc": m.get("pr_auc"),
            }
        )
    return out


def decay(batches: list[dict[str, Any]], holdout: dict[str, float], policy: DecayPolicy, version: str) -> Verdict:
    """Live ROC-AUC of the champion's last churn batch whose window has passed, against its holdout's.

    ROC-AUC, not the headline PR-AUC: PR-AUC moves with the churn rate, which differs between a
    holdout and a live window without the model getting any worse.
    """
    metric = "live_roc_auc"
    reference = holdout.get("roc_auc")
    if reference is None:
        return Verdict(metric, None, None, None, "no_reference", "the champion's run has no holdout roc_auc")
    threshold = reference * (1 - policy.decay_tolerance)
    if not batches:
        why = f"no churn scores by v{version} whose churn window has passed yet"
        return Verdict(metric, None, threshold, None, "insufficient_data", why)
    last = batches[-1]
    if last["users_hit"] < policy.min_positives or last["roc_auc"] is None:
        why = (
            f"{last['users_hit']} of {last['users_scored']} users scored on {last['as_of']} churned "
            f"(< {policy.min_positives} to judge a ranking)"
        )
        return Verdict(metric, last["roc_auc"], threshold, None, "insufficient_data", why)
    value = float(last["roc_auc"])
    detail = (
        f"batch of {last['as_of']}: {last['users_hit']}/{last['users_scored']} churned; live pr_auc "
        f"{last['pr_auc']:.3f}; holdout roc_auc {reference:.3f}"
    )
    return Verdict(metric, value, threshold, value < threshold, "ok", detail)


def pooled_roc_auc(live: pd.DataFrame, version: str) -> tuple[float | None, int]:
    """Live ROC-AUC of one version's churn batches, averaged weighted by users scored, and how many
    of their users churned (what a ROC-AUC rests on). Batches without a ROC-AUC (one class) are left out."""
    rows = live[(live["model_version"] == version) & live["roc_auc"].notna()]
    scored = rows["users_scored"].to_numpy(dtype=float)
    if not scored.sum():
        return None, 0
    return float((rows["roc_auc"].to_numpy(dtype=float) * scored).sum() / scored.sum()), int(rows["users_hit"].sum())


class ChurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[str] = Field(min_length=1, max_length=1_000)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")


class ChurnScore(BaseModel):
    user_id: str
    churn_probability: float | None = Field(description="None for a user without features (unknown or inactive)")
    arm: Literal["champion", "challenger"] | None
    model_version: str | None


class ChurnAnswer(BaseModel):
    tenant_id: str
    model: str
    scores: list[ChurnScore]
    unknown_users: int
    request_id: str


def churn_scores(req: ChurnRequest, ctx: ServingContext) -> Served:
    """Churn probabilities for the tenant's users (None for users without features)."""
    return score_users(
        req.user_ids, ctx, kind="churn", mart=USER_FEATURES, field="churn_probability", endpoint="churn-scores"
    )


KIND = ModelKind(
    name="churn",
    description=(
        "Which users churn within the tenant's churn window (cancel, or go inactive where nobody cancels): "
        "a LightGBM classifier, or recency calibrated where no classifier beats it beyond chance."
    ),
    mart="churn_examples",
    mart_order="cutoff_date, user_id",
    label="is_churned",
    objective="binary",
    params={**COMMON_PARAMS, "objective": "binary", "num_leaves": 15, "min_data_in_leaf": 30},
    metrics=_metrics,
    headline="pr_auc",
    headline_metric=evaluate.pr_auc,
    lift_metrics=("roc_auc", "pr_auc"),
    reported_metrics=("roc_auc", "pr_auc", "brier"),
    lower_is_better=("brier", "log_loss"),
    baseline_name="recency",
    baseline=_recency,
    baseline_feature="days_since_last_activity",
    serving_mart=USER_FEATURES,
    online_marts={USER_FEATURES: OnlineMart("user_id", key="user_id")},
    predictions_table="predictions.churn_scores",
    predictions_ddl=_DDL,
    prediction_rows=_rows,
    live=LiveMonitoring(
        columns={"roc_auc": "double", "pr_auc": "double"},
        metrics=live_metrics,
        decay=decay,
        rollback=RollbackWatch("roc_auc (churn window)", None, pooled_roc_auc, min_count="min_positives"),
        reads=(
            "predictions.churn_scores",
            "stg_lake__events",
            "int_user_activity__daily",
            "int_tenant_churn_definitions",
            "int_tenant_windows",
        ),
    ),
    endpoint=Endpoint(
        "/v1/churn-scores", "Churn probabilities for up to 1,000 users", ChurnRequest, ChurnAnswer, churn_scores
    ),
    min_train_positives=30,
    min_holdout_positives=10,
    num_boost_round=120,
    fine_tune_rounds=40,
    plots=("calibration",),
    window_column="churn_window_days",
    label_window_days=CHURN_WINDOW_DAYS,
)
