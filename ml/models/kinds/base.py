"""What a model kind is: everything that differs between the recommender, churn and engagement.

A :class:`ModelKind` names its training mart (a dbt model whose feature columns are declared in
its yml), its label and LightGBM objective, its holdout metrics and the headline the promotion
gate compares, its non-ML baseline, the serving mart it scores and publishes, its batch
predictions table, its live (monitoring) metrics and decay check, and its API endpoint.
Training, the gate, scoring, publishing, monitoring, the API, the DAGs and the CLI iterate over
the registered kinds (:func:`ml.models.kinds.all_kinds`): a new kind is one module in this
package plus its dbt mart and yml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ml.data.publish import OnlineMart

if TYPE_CHECKING:
    import duckdb

    from ml.core.prediction_log import ServedLog
    from ml.core.tenants import Tenant
    from ml.data.publish import PublishedFeatures

# LightGBM parameters every kind starts from: deterministic, so a snapshot and seed reproduce a model.
COMMON_PARAMS: dict[str, Any] = {
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

# ------------------------------------------------------------------ serving


class ServedModel(Protocol):
    """A loaded champion or challenger, as the API holds it (:class:`ml.serving.models.LoadedModel`)."""

    name: str
    version: str
    trained_on: str
    features: list[str]
    recommender: Any  # a classic recommender family (ml.models.recsys), or None for LightGBM

    def columns_in(self, columns: dict[str, int]) -> np.ndarray: ...
    def predict(self, rows: np.ndarray) -> np.ndarray: ...
    def contributions(self, rows: np.ndarray) -> np.ndarray: ...


class ServingContext(Protocol):
    """What an endpoint may use for one request: the caller's tenant, its features and its models."""

    tenant_id: str
    seen_items: str  # the tenant's seen-items policy: exclude | allow

    @property
    def features(self) -> PublishedFeatures | None: ...
    def model(self, arm: str) -> ServedModel | None: ...
    def arm(self, user_id: str) -> str: ...


class NotServable(Exception):
    """The tenant cannot be answered yet (no features, no model): the API's 503, with what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Served:
    """One endpoint's answer: the body, the version label for metrics, fields for the prediction log."""

    body: dict[str, Any]
    version: str  # "v3", or "cold_start"
    log: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """A kind's ``POST /v1/...`` endpoint: its bodies and what answers them."""

    path: str
    summary: str
    request: type[BaseModel]
    answer: type[BaseModel]
    handle: Callable[[Any, ServingContext], Served]


# ------------------------------------------------------------------ monitoring


class DecayPolicy(Protocol):
    """The monitoring policy fields a decay check reads (:class:`ml.monitoring.policy.MonitorPolicy`)."""

    @property
    def decay_tolerance(self) -> float: ...
    @property
    def min_users(self) -> int: ...
    @property
    def min_positives(self) -> int: ...


@dataclass(frozen=True)
class Verdict:
    """A kind's live-performance check: the ``performance`` row of the ``monitoring`` table."""

    metric: str
    value: float | None
    threshold: float | None
    drifted: bool | None  # None: not judged (see status)
    status: str  # ok | insufficient_data | no_reference
    detail: str = ""


@dataclass(frozen=True)
class RollbackWatch:
    """How a freshly promoted champion is compared with the one it replaced on live batches.

    ``pooled(rows, version)`` gives (metric, count) of one version's batches at ``horizon_days``
    (None: each version's own, the horizon of its newest batches, as churn's window is) (higher is
    better); each side needs a count of at least the policy's ``min_count`` field
    (``min_users``: active users; ``min_positives``: e.g. churned users, what a ROC-AUC rests on).
    The monitor rolls back when the new version's metric falls more than the policy's
    ``rollback_tolerance`` below the old one's.
    """

    metric: str
    horizon_days: int | None
    pooled: Callable[[pd.DataFrame, str], tuple[float | None, int]]
    min_count: str = "min_users"


@dataclass(frozen=True)
class LiveMonitoring:
    """How a kind's served predictions are judged once their outcome is known.

    ``metrics`` computes rows of ``monitoring_live_metrics`` (one per batch of predictions:
    source, day, model version, horizon) from the warehouse and the API's prediction log (a
    :class:`~ml.core.prediction_log.ServedLog`, None when it has none); ``decay`` compares the champion's
    batches with its holdout metrics. ``reads``: the warehouse relations ``metrics`` reads (the
    monitor's lineage names them; the prediction log notes itself when it is read).
    """

    # the kind's columns in monitoring_live_metrics -> DuckDB type ("double" for a metric, "integer"
    # for a count); null in other kinds' rows
    columns: dict[str, str]
    metrics: Callable[[duckdb.DuckDBPyConnection, Tenant, date, ServedLog | None], list[dict[str, Any]]]
    decay: Callable[[list[dict[str, Any]], dict[str, float], DecayPolicy, str], Verdict]
    rollback: RollbackWatch | None = None  # None: promotions of this kind are not watched
    reads: tuple[str, ...] = ()


# ------------------------------------------------------------------ the kind


@dataclass(frozen=True)
class ModelKind:
    """One kind of model every tenant may get (see the module docstring)."""

    name: str
    description: str
    # training: a dbt mart with one row per example, features declared with meta.feature in its yml
    mart: str
    mart_order: str  # ORDER BY of a tenant's rows in a snapshot (stable bytes, stable id)
    label: str
    objective: str
    params: dict[str, Any]
    # evaluation on the time holdout
    metrics: Callable[[pd.DataFrame, np.ndarray, int | None], dict[str, float]]
    headline: str  # the metric the promotion gate compares
    lift_metrics: tuple[str, ...]  # compared with the baseline; the first decides ties on the headline
    reported_metrics: tuple[str, ...]  # what status and summaries show, model and baseline alike
    baseline_name: str
    baseline: Callable[[pd.DataFrame], np.ndarray]  # the non-ML baseline's scores
    # serving: the mart scored in batch, published for the API, and the drift reference
    serving_mart: str
    online_marts: dict[str, OnlineMart]  # published per tenant for the API (ml.data.publish)
    predictions_table: str  # in the warehouse's `predictions` schema
    predictions_ddl: str
    prediction_rows: Callable[[pd.DataFrame, np.ndarray, int], pd.DataFrame]
    live: LiveMonitoring
    endpoint: Endpoint
    lower_is_better: tuple[str, ...] = ()  # metrics where smaller is better (errors, deviances)
    group: str | None = None  # query column for ranking objectives
    keys: tuple[str, ...] = ("user_id",)  # what one example is about (besides tenant and cutoff)
    min_train_positives: int = 200  # examples with a positive label needed to train a tenant model
    # old -> new names of predictions-table columns an earlier release wrote (renamed in place
    # before the next scoring: ml.models.score)
    predictions_renamed: dict[str, str] = field(default_factory=dict)
    min_holdout_positives: int = 20
    num_boost_round: int = 150
    fine_tune_rounds: int = 60
    plots: tuple[str, ...] = field(default=())  # holdout plots logged with each run (ml.models.plots)
    # (mart, ORDER BY) of each user's whole interaction history, snapshotted and published beside
    # the kind's marts: the classic families (ml.models.recsys) learn from it and compete with
    # LightGBM for champion on the temporal holdout (ml.models.ranking). None: LightGBM only.
    history_mart: tuple[str, str] | None = None
    # the int_tenant_windows column that is this kind's label window: the days after a cutoff its
    # label counts (the holdout's and every training example's), and its days where a snapshot
    # records no windows (the dbt vars' defaults)
    window_column: str = "label_window_days"
    label_window_days: int = 7
    # a DuckDB predicate over the serving mart's columns: the rows whose features the monitor
    # compares over time (None: all). The recommender serves every user with history, but the
    # share of long-inactive users grows with a tenant's age: that mix is not drift.
    drift_population: str | None = None
    # the headline alone, from (labels, scores): the gate's bootstrap of a lead (ml.models.gate)
    # computes it on 200 resamples of the holdout, twice each. None: ``metrics`` of a frame.
    headline_metric: Callable[[np.ndarray, np.ndarray], float | None] | None = None
    # the one feature the baseline is (a whole number, higher: likelier positive or more; churn's
    # days since the last activity, engagement's sessions of the last short window). Set: the baseline competes
    # as a servable family of its own, named ``baseline_name`` (ml.models.servable_baseline)
    baseline_feature: str | None = None
    # whether that feature's value is itself the baseline's prediction (engagement: the last
    # short window's sessions), served as it is; False: a probability is fitted to it (churn's recency, Platt scaling)
    baseline_is_prediction: bool = False

    def matrix(self, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
        """The model's input: declared features as float32 columns, in declared order.

        Raises:
            KeyError: a declared feature is missing from ``frame`` (the dbt mart and its yml disagree).
        """
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise KeyError(f"{self.name}: feature columns {missing} are declared in dbt but absent from {self.mart}.")
        return frame[features].astype(np.float32)

    def label_days(self, windows: dict[str, Any]) -> int:
        """Days after a cutoff this kind's label counts, for a tenant whose windows are ``windows``
        (its snapshot's ``int_tenant_windows`` row): its ``window_column``, else ``label_window_days``."""
        value = windows.get(self.window_column)
        return int(value) if value is not None else self.label_window_days

    def positives(self, frame: pd.DataFrame) -> int:
        """Examples with a positive label (a click, a churn, at least one session)."""
        return int((frame[self.label] > 0).sum())

    def headline_score(self, metrics: dict[str, float]) -> float:
        """The headline oriented so that larger is better (-inf without one): to choose between candidates."""
        v = metrics.get(self.headline)
        if v is None:
            return float("-inf")
        return -v if self.headline in self.lower_is_better else v

    def improvement(self, metric: str, new: float, old: float) -> float:
        """How far ``new`` is ahead of ``old`` on ``metric`` (positive: better, whichever its direction)."""
        return old - new if metric in self.lower_is_better else new - old
