"""A kind's baseline as a model that serves (churn's recency, engagement's same-as-last-week), and
the rule that a learnt model must beat it beyond chance to be chosen instead.

A kind whose baseline is one feature (``ModelKind.baseline_feature``: churn's
``days_since_last_activity``, engagement's ``sessions_short``) gets a candidate of the baseline's family
(``ModelKind.baseline_name``: ``recency``, ``same_as_last_window``) in every training: a tenant's
(a young tenant's too, which the global model serves only where it beats that baseline beyond
chance) and each region's global model, fitted on the sharing tenants' pooled labels. Churn's is that feature through a sigmoid fitted on the tenant's training labels
(Platt scaling), strictly increasing, so it ranks users exactly as the baseline does and says how
likely each is to churn; engagement's (``ModelKind.baseline_is_prediction``) is the feature's value
itself, the last short window's sessions as the next one's expected count. A monotone-constrained tree model would
not do: on a small tenant's labels it pools neighbouring days into a few steps, and the ties cost
up to 0.04 ROC-AUC against recency itself (20 synthetic tenants of 1,500 users). It is stored as a
LightGBM text model (a lookup tree, :func:`fit_baseline`) on the same input columns as the learnt
ones: registered, checked, served and scored the same way.

:func:`choose` is the recommender competition's rule (:mod:`ml.models.ranking`) for these kinds'
first champion: the best learnt candidate is chosen over the baseline only when its lead on the
headline holds at the lower end of the 95% bootstrap interval over the holdout's examples
(:func:`ml.models.gate.headline_interval`); otherwise the baseline is, and the first champion is the
baseline made servable rather than a model that only ties it within noise. Once a tenant has a
champion, the best candidate goes to the gate, which needs it ahead of the champion beyond chance.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from ml.core.settings import TrainSettings
from ml.models.fit import LIGHTGBM, Candidate, evaluate, predict
from ml.models.gate import headline_interval
from ml.models.kinds.base import ModelKind

GRID_MIN_DAYS = 400  # the table covers at least this many values, and twice the largest seen in training,
# and at most this many values (a leaf each: fitting the tree grows with the leaves; larger values,
# a gap of 5.6 years or 2,048 sessions in a week, share the last leaf)
GRID_MAX = 2048
MIN_SLOPE = 1e-3  # b's floor: the table still rises by more than float32 resolves (a LightGBM leaf's precision)


def _platt(days: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) of ``P(positive) = 1 / (1 + exp(-(a + b * log1p(days))))``, fitted by logistic
    regression (Platt, "Probabilistic outputs for support vector machines", 1999: a sigmoid of the
    score); ``b`` is kept at least ``MIN_SLOPE`` so that the order stays the baseline's.

    Raises:
        ValueError: ``labels`` hold one class only (no probability to learn).
    """
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(labels)) < 2:
        raise ValueError("a baseline's probabilities need positive and negative training labels")
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.log1p(days).reshape(-1, 1), labels)
    return float(lr.intercept_[0]), max(float(lr.coef_[0, 0]), MIN_SLOPE)


def fit_baseline(kind: ModelKind, frame: pd.DataFrame, features: list[str], policy: TrainSettings) -> Any:
    """The baseline as a ``lightgbm.Booster`` over ``features`` that reads ``kind.baseline_feature`` only.

    The feature is a whole number (days, sessions). Its prediction is the value itself when
    ``kind.baseline_is_prediction`` (engagement: the last short window's sessions), else a probability: a
    sigmoid of ``log1p(value)`` fitted on ``frame``'s labels (:func:`_platt`). Either is strictly
    increasing, so the model orders users exactly as the baseline does (ties where the baseline
    ties) and its ranking metrics are the baseline's. It is stored as LightGBM's one regression
    tree with a leaf per whole value from 0 to the grid's end (``GRID_MIN_DAYS``, or twice the
    largest value in ``frame``, at most ``GRID_MAX``; larger values share the last leaf): a lookup table in the format
    every champion is loaded, served and checked in. A missing value takes the leaf of 0.

    Raises:
        ValueError: the kind has no ``baseline_feature``, ``features`` lack it, or the tree does
            not reproduce the table (it would not rank as the baseline); for a probability,
            ``frame`` holds one class only.
    """
    import lightgbm as lgb

    column = kind.baseline_feature
    if column is None or column not in features:
        raise ValueError(f"{kind.name}: its baseline feature {column!r} is not among its input columns")
    days = frame[column].to_numpy(dtype=np.float64) if column in frame else np.empty(0)
    known = np.isfinite(days)
    end = max(GRID_MIN_DAYS, 2 * int(np.nanmax(days, initial=0)) + 1)
    grid = np.arange(0, min(end, GRID_MAX), dtype=np.float64)
    if kind.baseline_is_prediction:
        table = grid.copy()
    else:
        a, b = _platt(np.clip(days[known], 0, None), frame[kind.label].to_numpy()[known].astype(int))
        table = 1 / (1 + np.exp(-(a + b * np.log1p(grid))))
    x = pd.DataFrame(0.0, index=range(len(grid)), columns=features, dtype=np.float32)
    x[column] = grid.astype(np.float32)
    params = {
        "objective": "regression",
        "num_leaves": len(grid),
        "min_data_in_leaf": 1,
        "min_data_in_bin": 1,
        "min_sum_hessian_in_leaf": 0.0,
        "max_bin": len(grid) + 1,
        "learning_rate": 1.0,
        "lambda_l2": 0.0,
        "boost_from_average": False,
        "feature_pre_filter": False,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": policy.threads,
        "verbosity": -1,
    }
    booster = lgb.train(params, lgb.Dataset(x, label=table, feature_name=features), num_boost_round=1)
    got = booster.predict(x, num_threads=1)
    if not (np.allclose(got, table, rtol=0, atol=1e-6) and np.all(np.diff(got) > 0)):
        raise ValueError(f"{kind.name}: the {kind.baseline_name} table was not reproduced by its tree")
    return booster


def candidate(
    kind: ModelKind,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    catalogue: int | None,
    policy: TrainSettings,
    trained_on: str = "tenant",
) -> Candidate | None:
    """The baseline's candidate, fitted on ``train`` (a tenant's, or a region's sharing tenants'
    for its global model: ``trained_on="global"``) and scored on ``holdout`` (None: the kind has no
    servable baseline or ``features`` lack its feature, or a probability's ``train`` holds one class
    only; a prediction, engagement's
    sessions of the last short window, needs no training rows)."""
    if kind.baseline_feature is None or kind.baseline_feature not in features:
        return None  # (a snapshot from before the feature: nothing to serve it from)
    if not kind.baseline_is_prediction and not 0 < kind.positives(train) < len(train):
        return None  # no probability to fit
    t0 = time.perf_counter()
    booster = fit_baseline(kind, train, features, policy)
    c = Candidate(trained_on, booster, seconds=time.perf_counter() - t0, family=kind.baseline_name)
    c.metrics = evaluate(kind, booster, holdout, features, catalogue)
    return c


def choose(
    kind: ModelKind, candidates: list[Candidate], holdout: pd.DataFrame, features: list[str], first: bool = True
) -> tuple[Candidate, str]:
    """(the version to register, why). For a ``first`` champion: the best learnt candidate on the
    headline when its lead over the baseline's family holds beyond chance (see the module
    docstring), else that baseline. With a champion (``first`` false), or when the baseline does not
    compete or there is no holdout: the best candidate, which the gate then judges against the
    champion beyond chance (a better classifier must not be dropped for a recency that loses to it)."""
    h = kind.headline

    def best(cs: list[Candidate]) -> Candidate:  # ties (as with no holdout): learnt first, then the tenant's own
        return max(cs, key=lambda c: (kind.headline_score(c.metrics), c.family == LIGHTGBM, c.trained_on != "global"))

    # the baseline fitted on this training's labels (a young tenant's borrowed global model, its
    # files already in MLflow, may be of the baseline's family too)
    baseline = next((c for c in candidates if c.family == kind.baseline_name and c.model_uri is None), None)
    learnt = [c for c in candidates if c.family == LIGHTGBM]
    if not first or baseline is None or not learnt or holdout.empty or h not in baseline.metrics:
        winner = best(candidates)
        return winner, winner.label
    model = best(learnt)
    scores, other = (predict(kind, c.booster, holdout, features) for c in (model, baseline))
    low, high = headline_interval(kind, holdout, scores, np.asarray(other, dtype=np.float64), None)
    versus = (
        f"{model.label} {h} {model.metrics.get(h, float('nan')):.4f} vs {baseline.label} "
        f"{baseline.metrics[h]:.4f}, lead 95% interval [{low:+.4f}, {high:+.4f}]"
    )
    if low > 0:
        return model, f"{model.label}: {versus}"
    return baseline, f"{baseline.label}: {versus}, not beyond chance"
