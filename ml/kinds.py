"""Model kinds: what differs between the recommender and the churn model, in one place.

A kind names its training mart (a dbt model whose feature columns are declared in its yml),
its label, its LightGBM objective, its holdout metrics, its baseline and the headline metric
the promotion gate compares. Training, the registry, the gate and batch scoring are written
against :class:`ModelKind`, so a third kind is one more instance here plus its dbt mart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml import evaluate


@dataclass(frozen=True)
class ModelKind:
    name: str
    mart: str  # dbt training mart, one row per example
    label: str
    keys: tuple[str, ...]  # what one example is about (besides tenant and cutoff)
    objective: str  # LightGBM objective
    headline: str  # the metric the promotion gate compares (higher is better)
    lift_metrics: tuple[str, ...]
    reported_metrics: tuple[str, ...]  # what status and summaries show, model and baseline alike
    metrics: Callable[[pd.DataFrame, np.ndarray, int | None], dict[str, float]]
    baseline_name: str
    baseline: Callable[[pd.DataFrame], np.ndarray]  # scores of the non-ML baseline
    group: str | None = None  # query column for ranking objectives
    min_train_positives: int = 200
    min_holdout_positives: int = 20
    params: dict = field(default_factory=dict)
    num_boost_round: int = 150
    fine_tune_rounds: int = 60

    def matrix(self, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
        """The model's input: declared features as float32 columns, in declared order."""
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise KeyError(f"{self.name}: feature columns {missing} are declared in dbt but absent from {self.mart}.")
        return frame[features].astype(np.float32)

    def positives(self, frame: pd.DataFrame) -> int:
        return int(frame[self.label].sum())


def _ranking_metrics(frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None) -> dict[str, float]:
    return evaluate.ranking_metrics(frame, scores, catalogue_items)


def _churn_metrics(frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None) -> dict[str, float]:
    return evaluate.classification_metrics(frame["is_churned"].to_numpy(), scores)


def _popularity(frame: pd.DataFrame) -> np.ndarray:
    """The tenant's most clicked items of the last week first, for everyone."""
    return -frame["item_popularity_rank_7d"].to_numpy(dtype=np.float64)


def _recency(frame: pd.DataFrame) -> np.ndarray:
    """The longer since a user's last activity, the likelier they churn."""
    return frame["days_since_last_activity"].to_numpy(dtype=np.float64)


_COMMON = {
    "learning_rate": 0.08,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "max_bin": 127,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 7,
    "verbosity": -1,
}

RECOMMENDER = ModelKind(
    name="recommender",
    mart="ranking_examples",
    label="is_clicked",
    keys=("user_id", "item_id"),
    objective="lambdarank",
    group="query_id",
    headline="hit_rate_at_10",
    lift_metrics=("hit_rate_at_10", "ndcg_at_10", "map_at_10"),
    reported_metrics=("hit_rate_at_10", "ndcg_at_10", "map_at_10", "catalogue_coverage_at_10"),
    metrics=_ranking_metrics,
    baseline_name="popularity",
    baseline=_popularity,
    params={**_COMMON, "objective": "lambdarank", "lambdarank_truncation_level": 20, "eval_at": [10]},
)

CHURN = ModelKind(
    name="churn",
    mart="churn_examples",
    label="is_churned",
    keys=("user_id",),
    objective="binary",
    headline="pr_auc",
    lift_metrics=("roc_auc", "pr_auc"),
    reported_metrics=("roc_auc", "pr_auc", "brier"),
    metrics=_churn_metrics,
    baseline_name="recency",
    baseline=_recency,
    min_train_positives=30,
    min_holdout_positives=10,
    params={**_COMMON, "objective": "binary", "num_leaves": 15, "min_data_in_leaf": 30},
    num_boost_round=120,
    fine_tune_rounds=40,
)

KINDS: dict[str, ModelKind] = {k.name: k for k in (RECOMMENDER, CHURN)}


def get_kind(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; known kinds: {sorted(KINDS)}") from None
