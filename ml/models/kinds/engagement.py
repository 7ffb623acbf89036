"""Engagement: how many sessions each user will have in the tenant's next short window, against
"same as the last one".

The window is the tenant's short feature window (``int_tenant_windows.short_window_days``: 7 days
for a daily platform, 35 for a shop customers visit monthly), the one its ``sessions_short``
feature counts before a cutoff. A LightGBM regression with the Poisson objective (the label is a
count) on the user features of ``engagement_examples``. The baseline predicts each user's
sessions of the window before the cutoff. Metrics: MAE, RMSE and mean Poisson deviance; the headline is **RMSE** (lower is better):
like the Poisson objective it is minimised by the expected count, it stays finite for the
baseline (which predicts zero for users idle last week, where Poisson deviance is unbounded),
and it is in the label's unit, sessions. The baseline competes for champion as a servable
family of its own (``same_as_last_window``: the last window's count through a lookup tree,
:mod:`ml.models.servable_baseline`): a tenant's first champion is the Poisson model only where its
RMSE lead holds beyond chance on the holdout. The API answers ``POST /v1/engagement-scores``; the
score DAG writes ``predictions.engagement_scores``. Once a batch's window has passed the monitor
records its RMSE and MAE and judges decay by Spearman's rank correlation between predicted and
actual sessions, against the holdout's: like HitRate@10 and ROC-AUC for the other kinds it asks
whether the model still tells the engaged from the idle, and a level shift between the holdout
window and a live one (a busy week, a model trained before its long windows filled) is not decay.
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
    Served,
    ServingContext,
    Verdict,
)

SHORT_WINDOW_DAYS = 7  # the window of a warehouse built before int_tenant_windows had short_window_days
USER_FEATURES = "user_features"
LABEL = "sessions_next_short"


def _metrics(frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None) -> dict[str, float]:
    return evaluate.regression_metrics(frame[LABEL].to_numpy(), scores)


def _same_as_last_window(frame: pd.DataFrame) -> np.ndarray:
    """Each user will have as many sessions in the next short window as in the last one."""
    return frame["sessions_short"].to_numpy(dtype=np.float64)


def _rows(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    rows = frame[["tenant_id", "cutoff_date", "user_id"]].rename(columns={"cutoff_date": "as_of"})
    return rows.assign(expected_sessions=scores)


_DDL = """
create table if not exists predictions.engagement_scores (
    tenant_id varchar not null,
    as_of date not null,
    user_id varchar not null,
    expected_sessions double not null,
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
    """MAE and RMSE of each batch of engagement scores once its window has passed.

    A batch (``predictions.engagement_scores`` at ``as_of``, one model version) is labelled as the
    mart labels: a user's sessions in ``[as_of, as_of + window)`` (0 without any), the window
    being the one the batch was scored for (its ``horizon_days``; the tenant's short window in
    ``int_tenant_windows`` for a batch scored before horizons were recorded). Rows:
    ``users_scored`` = users scored, ``users_active`` = those with a session, ``users_hit`` = those
    whose rounded prediction was exact; metrics ``rmse``, ``mae``, ``spearman``.
    """
    if not con.execute(
        "select count(*) from information_schema.tables where table_schema = 'predictions' "
        "and table_name = 'engagement_scores'"
    ).fetchone()[0]:
        return []
    window = tenant_window(con, tenant.tenant_id, "short_window_days", SHORT_WINDOW_DAYS)
    horizon = batch_horizon(con, "predictions.engagement_scores", "$w")
    frame = con.execute(
        f"""
        select s.as_of, s.model_version, {horizon} as horizon_days, s.user_id, s.expected_sessions as predicted,
               coalesce(sum(a.sessions), 0) as actual
        from predictions.engagement_scores s
        left join int_user_activity__daily a
            on a.tenant_id = s.tenant_id and a.user_id = s.user_id
            and a.activity_date >= s.as_of and a.activity_date < s.as_of + {horizon}
        where s.tenant_id = $t and s.as_of + {horizon} <= $cutoff
        group by all
        """,
        {"t": tenant.tenant_id, "w": window, "cutoff": serving_cutoff},
    ).df()
    out = []
    for (day, version, days), g in frame.groupby(["as_of", "model_version", "horizon_days"], sort=True):
        m = evaluate.regression_metrics(g["actual"].to_numpy(), g["predicted"].to_numpy())
        out.append(
            {
                "tenant_id": tenant.tenant_id,
                "kind": "engagement",
                "source": "batch",
                "model_version": str(version),
                "as_of": pd.Timestamp(day).date(),
                "horizon_days": int(days),
                "users_scored": len(g),
                "users_active": int((g["actual"] > 0).sum()),
                "users_hit": int((g["predicted"].round() == g["actual"]).sum()),
                "mae": m.get("mae"),
                "rmse": m.get("rmse"),
                "spearman": m.get("spearman"),
            }
        )
    return out


def decay(batches: list[dict[str, Any]], holdout: dict[str, float], policy: DecayPolicy, version: str) -> Verdict:
    """Live Spearman correlation of the champion's last batch whose window has passed, against its holdout's.

    Decayed when it falls below ``(1 - decay_tolerance)`` times the holdout's (see the module docstring).
    """
    metric = "live_spearman"
    reference = holdout.get("spearman")
    if reference is None:
        return Verdict(metric, None, None, None, "no_reference", "the champion's run has no holdout spearman")
    threshold = reference * (1 - policy.decay_tolerance)
    if not batches:
        why = f"no engagement scores by v{version} with their window of sessions after them yet"
        return Verdict(metric, None, threshold, None, "insufficient_data", why)
    last = batches[-1]
    if last["users_scored"] < policy.min_users or last.get("spearman") is None:
        why = f"{last['users_scored']} users scored on {last['as_of']} (< {policy.min_users}), or all predicted alike"
        return Verdict(metric, last.get("spearman"), threshold, None, "insufficient_data", why)
    value = float(last["spearman"])
    detail = (
        f"batch of {last['as_of']}: {last['users_scored']} users, live rmse {last['rmse']:.3f} and mae "
        f"{last['mae']:.3f} (holdout rmse {holdout.get('rmse', float('nan')):.3f}); holdout spearman {reference:.3f}"
    )
    return Verdict(metric, value, threshold, value < threshold, "ok", detail)


class EngagementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[str] = Field(min_length=1, max_length=1_000)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")


class EngagementScore(BaseModel):
    user_id: str
    expected_sessions: float | None = Field(
        description="Expected sessions in the tenant's next short window (its short_window_days, logged with "
        "each training run: 7 for a daily platform); None for a user without features (unknown or inactive)"
    )
    arm: Literal["champion", "challenger"] | None
    model_version: str | None


class EngagementAnswer(BaseModel):
    tenant_id: str
    model: str
    scores: list[EngagementScore]
    unknown_users: int
    request_id: str


def engagement_scores(req: EngagementRequest, ctx: ServingContext) -> Served:
    """Expected sessions in the tenant's next short window for its users (None for users without features)."""
    return score_users(
        req.user_ids,
        ctx,
        kind="engagement",
        mart=USER_FEATURES,
        field="expected_sessions",
        endpoint="engagement-scores",
    )


KIND = ModelKind(
    name="engagement",
    description="How many sessions each user will have in the tenant's next short window (7 days for a daily "
    "platform): a LightGBM Poisson regression.",
    mart="engagement_examples",
    mart_order="cutoff_date, user_id",
    label=LABEL,
    objective="poisson",
    params={**COMMON_PARAMS, "objective": "poisson", "num_leaves": 15, "min_data_in_leaf": 30},
    metrics=_metrics,
    headline="rmse",
    headline_metric=evaluate.rmse,
    lift_metrics=("rmse", "mae", "poisson_deviance"),
    reported_metrics=("rmse", "mae", "poisson_deviance"),
    lower_is_better=("rmse", "mae", "poisson_deviance"),
    baseline_name="same_as_last_window",
    baseline=_same_as_last_window,
    baseline_feature="sessions_short",
    baseline_is_prediction=True,
    serving_mart=USER_FEATURES,
    online_marts={USER_FEATURES: OnlineMart("user_id", key="user_id")},
    predictions_table="predictions.engagement_scores",
    predictions_ddl=_DDL,
    # before the feature windows were per tenant (a daily tenant's window was and is 7 days)
    predictions_renamed={"expected_sessions_7d": "expected_sessions"},
    prediction_rows=_rows,
    live=LiveMonitoring(
        columns={"mae": "double", "rmse": "double", "spearman": "double"},
        metrics=live_metrics,
        decay=decay,
        reads=("predictions.engagement_scores", "int_user_activity__daily"),
    ),
    endpoint=Endpoint(
        "/v1/engagement-scores",
        "Expected sessions in the tenant's next short window for up to 1,000 users",
        EngagementRequest,
        EngagementAnswer,
        engagement_scores,
    ),
    min_train_positives=100,
    min_holdout_positives=20,
    num_boost_round=120,
    fine_tune_rounds=40,
    plots=("calibration",),
    window_column="short_window_days",
    label_window_days=SHORT_WINDOW_DAYS,
)
