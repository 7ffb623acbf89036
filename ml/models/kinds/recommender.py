"""The recommender: a LightGBM LambdaRank re-ranker over each user's candidates or a classic family
(:mod:`ml.models.ranking` chooses), against popularity.

Candidates come from dbt (``int_recommendation_candidates__history``: SQL sources and each user's
whole history); ``ranking_examples`` holds them at each training cutoff with ``is_clicked`` over
the next ``label_window_days``, ``ranking_candidates`` at the serving cutoff. The API answers
``POST /v1/recommendations`` (unknown users get the cold-start list); the score DAG writes each
user's top 10 to ``predictions.recommendations``; the monitor judges them by later clicks.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml.data.publish import OnlineMart
from ml.models import evaluate
from ml.models.kinds._recommender_live import LABEL_WINDOW_DAYS, NEXT_DAY, decay, live_metrics, pooled_hit_rate
from ml.models.kinds.base import (
    COMMON_PARAMS,
    Endpoint,
    LiveMonitoring,
    ModelKind,
    NotServable,
    RollbackWatch,
    Served,
    ServingContext,
)
from ml.models.recsys import served

K = evaluate.K
CANDIDATES, COLD_START, HISTORY = "ranking_candidates", "cold_start_items", "interaction_history"
EXPLAIN = "Add each item's top 3 reasons: a re-ranker's SHAP values; a classic family's history items (history:<item>)"


def _popularity(frame: pd.DataFrame) -> np.ndarray:
    """The tenant's most clicked items of its short window first, for everyone."""
    return -frame["item_popularity_rank_short"].to_numpy(dtype=np.float64)


def _top_k(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """Each user's ``k`` best-scored candidates (ties by item id): ``predictions.recommendations`` rows."""
    df = pd.DataFrame(
        {
            "tenant_id": frame["tenant_id"].to_numpy(),
            "as_of": frame["cutoff_date"].to_numpy(),
            "user_id": frame["user_id"].to_numpy(),
            "item_id": frame["item_id"].to_numpy(),
            "score": scores,
        }
    )
    df = df.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="mergesort")
    df["rank"] = df.groupby("user_id", sort=False).cumcount() + 1
    return df[df["rank"] <= k][["tenant_id", "as_of", "user_id", "rank", "item_id", "score"]]


_DDL = """
create table if not exists predictions.recommendations (
    tenant_id varchar not null,
    as_of date not null,
    user_id varchar not null,
    rank integer not null,
    item_id varchar not null,
    score double not null,
    horizon_days integer,
    model_name varchar not null,
    model_version varchar not null,
    trained_on varchar not null,
    scored_at timestamptz not null,
    primary key (tenant_id, as_of, user_id, rank)
)
"""

# ------------------------------------------------------------------ the API


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=128)
    k: int = Field(10, ge=1, le=100)
    context: dict[str, str | int | float | bool] | None = Field(
        None, description="Recorded in the prediction log; today's models do not use it"
    )
    exclude: list[str] = Field(default_factory=list, max_length=1_000, description="Item ids never to return")
    explain: bool = Field(False, description=EXPLAIN)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")


class Contribution(BaseModel):
    feature: str
    value: float
    contribution: float


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    score: float | None
    explanation: list[Contribution] | None = None


class ModelRef(BaseModel):
    name: str
    version: str
    trained_on: str


class RecommendationAnswer(BaseModel):
    tenant_id: str
    user_id: str
    arm: Literal["champion", "challenger", "cold_start"]
    model: ModelRef | None
    items: list[RecommendedItem]
    features_snapshot: str | None
    request_id: str


def _cold_start(cold: list[str], k: int, excluded: set[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for item_id in cold:
        if item_id not in excluded:
            items.append({"rank": len(items) + 1, "item_id": item_id, "score": None})
            if len(items) == k:
                break
    return items


def _ranked(model: Any, ids: np.ndarray, x: np.ndarray, req: RecommendationRequest) -> list[dict[str, Any]]:
    scores = model.predict(x)
    if req.exclude:
        excluded = set(req.exclude)  # a set's lookups: numpy's isin compares object arrays pairwise
        scores = np.where(np.fromiter((i in excluded for i in ids), dtype=bool, count=len(ids)), -np.inf, scores)
    order = np.argsort(-scores, kind="stable")[: req.k]
    order = order[np.isfinite(scores[order])]
    contrib = model.contributions(x[order]) if req.explain and len(order) else None
    items = []
    for r, i in enumerate(order):
        entry: dict[str, Any] = {"rank": r + 1, "item_id": str(ids[i]), "score": float(scores[i])}
        if contrib is not None:
            top = np.argsort(-np.abs(contrib[r, :-1]))[:3]
            entry["explanation"] = [
                {"feature": model.features[j], "value": float(x[i, j]), "contribution": float(contrib[r, j])}
                for j in top
            ]
        items.append(entry)
    return items


def recommend(req: RecommendationRequest, ctx: ServingContext) -> Served:
    """Top-k items for one user from the tenant's champion (or challenger arm); cold start for
    unknown users. Under the tenant's seen-items policy ``exclude`` (the default) items the user
    already consumed are never recommended; ``allow`` keeps them."""
    feats = ctx.features
    if feats is None:
        raise NotServable(
            "no_features",
            f"tenant {ctx.tenant_id} has no published features yet: run the features DAG "
            "(or `tenantflow features build`: it publishes them for the API)",
        )
    arm = ctx.arm(req.user_id)
    model = ctx.model(arm)
    history = served.published_history(feats.tables.get(HISTORY), req.user_id, feats.serving_cutoff)
    exclude_seen = ctx.seen_items == "exclude"
    consumed = set(history["item_id"]) if history is not None and exclude_seen else set()
    table = feats.tables[CANDIDATES]
    rows = table.rows(req.user_id)
    if model is not None and model.recommender is not None and history is not None:
        # a classic family's top k from the user's published history
        items = served.family_items(
            model.recommender, history, req.user_id, req.k, req.exclude, exclude_seen, req.explain
        )
    elif rows is None or model is None or model.recommender is not None:
        arm, items = "cold_start", _cold_start(feats.lists[COLD_START], req.k, set(req.exclude) | consumed)
    else:
        assert table.items is not None
        x = table.matrix[rows][:, model.columns_in(table.columns)]
        items = _ranked(model, table.items[rows], x, req.model_copy(update={"exclude": [*req.exclude, *consumed]}))
        if not items:  # every candidate consumed: what the holdout judges such a user by
            arm, items = "cold_start", _cold_start(feats.lists[COLD_START], req.k, set(req.exclude) | consumed)
    ref = (
        {"name": model.name, "version": model.version, "trained_on": model.trained_on}
        if arm != "cold_start" and model
        else None
    )
    body = {
        "tenant_id": ctx.tenant_id,
        "user_id": req.user_id,
        "arm": arm,
        "model": ref,
        "items": items,
        "features_snapshot": feats.snapshot_id,
    }
    log = {
        "endpoint": "recommendations",
        "user_id": req.user_id,
        "items": [i["item_id"] for i in items],
        "model_name": ref["name"] if ref else None,
        "model_version": ref["version"] if ref else None,
        "arm": arm,
        "features_snapshot": feats.snapshot_id,
        "context": req.context,
    }
    return Served(body, f"v{ref['version']}" if ref else "cold_start", log)


KIND = ModelKind(
    name="recommender",
    description="Which items to show each user next: candidates from dbt, re-ranked by LightGBM LambdaRank.",
    mart="ranking_examples",
    mart_order="cutoff_date, user_id, item_id",
    label="is_clicked",
    keys=("user_id", "item_id"),
    objective="lambdarank",
    group="query_id",
    params={
        **COMMON_PARAMS,
        "objective": "lambdarank",
        "lambdarank_truncation_level": 20,
        "eval_at": [K],
        # Each tree learns from 80% of the queries (a user at a cutoff): the fit's spread with its sample (an sd of
        # 0.009 nDCG@10 on the demo's drift retrain) shrinks at one fit's cost (benchmarks/README.md, "The demo's
        # drift retrain").
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "bagging_by_query": True,
    },
    metrics=evaluate.ranking_metrics,
    headline=f"ndcg_at_{K}",
    lift_metrics=(f"ndcg_at_{K}", f"hit_rate_at_{K}", f"map_at_{K}"),
    reported_metrics=(
        f"ndcg_at_{K}",
        f"hit_rate_at_{K}",
        f"precision_at_{K}",
        f"recall_at_{K}",
        f"map_at_{K}",
        f"catalogue_coverage_at_{K}",
    ),
    baseline_name="popularity",
    baseline=_popularity,
    serving_mart=CANDIDATES,
    online_marts={
        CANDIDATES: OnlineMart("user_id, item_id", key="user_id", item="item_id"),
        COLD_START: OnlineMart("list_kind, list_rank", key=None, item="item_id"),
        HISTORY: OnlineMart("user_id, item_id, event_date", key="user_id", item="item_id"),
    },
    predictions_table="predictions.recommendations",
    predictions_ddl=_DDL,
    prediction_rows=_top_k,
    live=LiveMonitoring(
        columns={
            "hit_rate_at_10": "double",
            "ndcg_at_10": "double",
            "ctr": "double",
            "impressions": "integer",
            "recommended_clicked": "integer",
        },
        metrics=live_metrics,
        decay=decay,
        rollback=RollbackWatch("hit_rate_at_10 (next day)", NEXT_DAY, pooled_hit_rate),
        reads=("predictions.recommendations", "stg_lake__events"),
    ),
    endpoint=Endpoint(
        "/v1/recommendations", "Top-k items for one user", RecommendationRequest, RecommendationAnswer, recommend
    ),
    plots=("ranking_comparison",),
    history_mart=(HISTORY, "user_id, item_id, event_date"),
    drift_population="user_events_long > 0",
    label_window_days=LABEL_WINDOW_DAYS,
)
