"""Offline evaluation: the field's top-k ranking metrics (one definition: the recommender's
holdout, and so the gate, is scored by :func:`ranking_metrics` on top of it), the two evaluation
protocols (temporal and stratified random splits), bootstrap intervals; the classification and
regression metrics of the other kinds, and lift over a baseline.

Metric names are the same for every tenant (``ndcg_at_10``, ``roc_auc``, ...) so runs compare
side by side in the MLflow UI.

Ranking definitions (binary relevance; Microsoft's recommenders library, ``recommenders.evaluation.
python_evaluation``, and trec_eval's ``ndcg_cut``/``P``/``recall``/``map_cut``, which a test
checks them against):

- ``ndcg_at_k``: DCG of the top k, ``sum(rel_i / log2(i + 1))``, over the ideal DCG, which puts
  ``min(k, |relevant|)`` relevant items first.
- ``precision_at_k``: hits in the top k over k (a list shorter than k still divides by k).
- ``recall_at_k``: hits in the top k over ``|relevant|``.
- ``map_at_k``: mean average precision as recommenders' ``map``: the precision at each hit in
  the top k, summed, over ``|relevant|`` (trec_eval's ``map_cut_k``).
- ``hit_rate_at_k``: 1 when the top k holds any relevant item.
- ``catalogue_coverage_at_k``: distinct items in anyone's top k over the catalogue's size.

Every user with a relevant item counts: a user the model gave no list (or a list without hits)
scores 0, so a model cannot look better by leaving hard users out (recommenders averages over
the users both sides know; ours is stricter where they differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

K = 10
PER_USER = ("ndcg", "precision", "recall", "ap", "hit")


def per_query_metrics(hits: np.ndarray, n_relevant: np.ndarray) -> pd.DataFrame:
    """Each query's metrics from its top-k hit flags and how many relevant items it has.

    Args:
        hits: ``(queries, k)`` booleans, ``hits[q, i]``: the item at rank ``i + 1`` of query
            ``q``'s list is relevant (False past the end of a short list).
        n_relevant: ``(queries,)`` relevant items per query, in the list or not (>= 1).

    Returns:
        A frame of ``PER_USER`` columns (floats in [0, 1]), one row per query.

    Raises:
        ValueError: shapes disagree, a query has no relevant item, or has more hits than relevant items.
    """
    hits = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if hits.ndim != 2 or len(hits) != len(n_rel):
        raise ValueError(f"hits must be (queries, k) and n_relevant (queries,), got {hits.shape} and {n_rel.shape}")
    if len(n_rel) and n_rel.min() < 1:
        raise ValueError("every query needs at least one relevant item (leave the others out)")
    k = hits.shape[1]
    n_hits = hits.sum(axis=1)
    if (n_hits > n_rel).any():
        raise ValueError("a query has more hits than relevant items: count relevant items per query, not per list")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    dcg = hits @ discount
    idcg = ideal[np.minimum(n_rel, k).astype(int)]
    precision_at_hit = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return pd.DataFrame(
        {
            "ndcg": dcg / idcg,
            "precision": n_hits / k,
            "recall": n_hits / n_rel,
            "ap": (precision_at_hit * hits).sum(axis=1) / n_rel,
            "hit": (n_hits > 0).astype(np.float64),
        }
    )


def hits_matrix(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k hit flags of every user with a relevant item.

    Args:
        recommended: ``user_id, item_id, rank`` (1 = best; each user's ranks distinct).
        relevant: ``user_id, item_id``, the held-out interactions (duplicates count once).

    Returns:
        ``(users, hits (users, k), n_relevant)``, users sorted; a user without a list has no hits.

    Raises:
        ValueError: a rank below 1, or a user's list naming an item twice or two items at one rank.
    """
    truth = relevant[["user_id", "item_id"]].drop_duplicates()
    n_rel = truth.groupby("user_id").size()
    users = n_rel.index.to_numpy()
    if len(recommended) and recommended["rank"].min() < 1:
        raise ValueError("ranks start at 1 (the best item of a list)")
    top = recommended.loc[recommended["rank"] <= k, ["user_id", "item_id", "rank"]]
    if top.duplicated(["user_id", "item_id"]).any() or top.duplicated(["user_id", "rank"]).any():
        raise ValueError("a user's list names an item twice, or two items at one rank")
    hit = top.merge(truth, on=["user_id", "item_id"], how="inner")
    hits = np.zeros((len(users), k), dtype=bool)
    row = pd.Index(users).get_indexer(hit["user_id"])
    keep = row >= 0
    hits[row[keep], hit["rank"].to_numpy()[keep].astype(int) - 1] = True
    return users, hits, n_rel.to_numpy()


@dataclass(frozen=True)
class Evaluation:
    """A ranking evaluated: per-user metrics and the means, with what to log."""

    per_user: pd.DataFrame  # PER_USER columns, one row per evaluated user
    k: int
    coverage: float | None = None

    def metrics(self) -> dict[str, float]:
        """``ndcg_at_k, precision_at_k, recall_at_k, map_at_k, hit_rate_at_k`` (means over users),
        ``catalogue_coverage_at_k`` when known, and ``users``."""
        names = {"ndcg": "ndcg", "precision": "precision", "recall": "recall", "ap": "map", "hit": "hit_rate"}
        out = {f"{names[c]}_at_{self.k}": float(self.per_user[c].mean()) for c in PER_USER if len(self.per_user)}
        if self.coverage is not None:
            out[f"catalogue_coverage_at_{self.k}"] = self.coverage
        out["users"] = float(len(self.per_user))
        return out


def evaluate_lists(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = K, catalogue_size: int | None = None
) -> Evaluation:
    """Evaluate top-k lists (``user_id, item_id, rank``) against held-out ``relevant`` interactions."""
    _, hits, n_rel = hits_matrix(recommended, relevant, k)
    coverage = None
    if catalogue_size:
        coverage = float(recommended.loc[recommended["rank"] <= k, "item_id"].nunique() / catalogue_size)
    return Evaluation(per_query_metrics(hits, n_rel), k, coverage)


def bootstrap_interval(
    values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. per-user nDCG@10).

    Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13: resample users with
    replacement, the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of the resampled means. ``(nan, nan)`` for no values.
    """
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):  # bounded memory: 100 resamples at a time
        idx = rng.integers(0, len(v), size=(min(100, n_resamples - start), len(v)))
        means[start : start + len(idx)] = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def paired_bootstrap(
    challenger: np.ndarray, champion: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """The mean per-user difference ``challenger - champion`` and its percentile bootstrap interval.

    Both arrays hold the same users in the same order (the pairing is what makes a small
    difference detectable: each user's difficulty cancels). Returns ``(mean, low, high)``.

    Raises:
        ValueError: the arrays differ in length.
    """
    a, b = np.asarray(challenger, dtype=np.float64), np.asarray(champion, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must be the same users: {a.shape} vs {b.shape}")
    diff = a - b
    lo, hi = bootstrap_interval(diff, n_resamples, confidence, seed)
    return float(diff.mean()) if len(diff) else float("nan"), lo, hi


def resampled_interval(
    stat: Callable[[np.ndarray], float], n: int, n_resamples: int = 200, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of any statistic of ``n`` examples, resampled with replacement.

    For statistics that are not means of per-example values: the difference of two models'
    PR-AUC or RMSE on the same users (``stat(indices)`` computes both on the one resample, so the
    pair's shared difficulty cancels). Resamples where ``stat`` is undefined (NaN, e.g. one
    class only) are left out; ``(nan, nan)`` when none is left.
    """
    rng = np.random.default_rng(seed)
    values = np.array([stat(rng.integers(0, n, size=n)) for _ in range(n_resamples)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def temporal_split(
    interactions: pd.DataFrame, test_days: int, time_column: str = "event_at"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``test_days`` days of ``interactions`` as the test set, everything before as
    training. Every user active in the test window is evaluated (a user new in it has no
    history: a cold-start user, kept, scored by what a model does for such users).

    The boundary is midnight UTC ``test_days`` days before the day after the newest interaction.
    """
    at = pd.to_datetime(interactions[time_column], utc=True)
    cutoff = at.max().normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=test_days)
    test = at >= cutoff
    return interactions[~test], interactions[test]


def stratified_random_split(
    interactions: pd.DataFrame, ratio: float = 0.75, seed: int = 42, min_interactions: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, a random ``ratio`` of their interactions for training and the rest for test, as
    recommenders' ``python_stratified_split`` (seed 42, 75/25 in its benchmark).

    Each user's rows are shuffled with one generator (``seed``); the first ``round(ratio * n)``
    train. Users with fewer than ``min_interactions`` rows are left out of both.
    """
    counts = interactions.groupby("user_id")["user_id"].transform("size")
    df = interactions[counts >= min_interactions]
    rng = np.random.default_rng(seed)
    order = df.assign(_r=rng.random(len(df))).sort_values(["user_id", "_r"], kind="mergesort")
    position = order.groupby("user_id").cumcount()
    n = order.groupby("user_id")["user_id"].transform("size")
    train = position < np.round(ratio * n)
    return order[train.to_numpy()].drop(columns="_r"), order[~train.to_numpy()].drop(columns="_r")


def positives_split(pairs: pd.DataFrame, ratio: float = 0.75, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`stratified_random_split` of the positive ``pairs`` (``interactions`` > 0): the held-out part is what
    is relevant; pairs only consumed (``interactions`` 0, a rating below the tenant's threshold) all go to the first
    part, consumed (kept out of the lists) and never relevant. ``pairs``: one row per user and item."""
    positive = pairs["interactions"].to_numpy() > 0
    train, test = stratified_random_split(pairs[positive], ratio, seed)
    return pd.concat([train, pairs[~positive]]), test


def ranking_metrics(
    frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None = None, k: int = K
) -> dict[str, float]:
    """The ranking metrics of a candidate re-ranker's holdout, with a bootstrap interval on nDCG@k.

    ``frame`` (the ``ranking_examples`` mart) needs ``query_id``, ``item_id``, ``is_clicked`` and
    ``query_clicked_items`` (the items the user interacted with in the label window, among the
    candidates or not: a relevant item the candidates missed is a miss, so the numbers judge
    candidate generation and re-ranking together). Adds ``candidate_recall`` (relevant items among
    the candidates over all relevant items), ``queries``, and 95% bootstrap intervals of nDCG@k
    and HitRate@k (``ndcg_at_k_low``, ``ndcg_at_k_high``, ``hit_rate_at_k_low``, ...).
    Ties in ``scores`` are broken by item id, so a constant model cannot look good by luck.
    """
    if frame.empty:
        return {}
    df = pd.DataFrame(
        {
            "q": frame["query_id"].to_numpy(),
            "item": frame["item_id"].to_numpy(),
            "y": frame["is_clicked"].to_numpy().astype(bool),
            "n_rel": frame["query_clicked_items"].to_numpy().astype(np.int64),
            "s": np.asarray(scores, dtype=np.float64),
        }
    ).sort_values(["q", "s", "item"], ascending=[True, False, True], kind="mergesort")
    rank = df.groupby("q", sort=False).cumcount().to_numpy()
    per_q = df.groupby("q", sort=False).agg(n_rel=("n_rel", "first"), found=("y", "sum"))
    n_rel = np.maximum(per_q["n_rel"].to_numpy(), per_q["found"].to_numpy())
    row = pd.Index(per_q.index).get_indexer(df["q"])
    hits = np.zeros((len(per_q), k), dtype=bool)
    top = (rank < k) & df["y"].to_numpy()
    hits[row[top], rank[top]] = True
    judged = n_rel > 0  # a query without an interaction in the label window has nothing to find
    shown = pd.unique(df["item"].to_numpy()[rank < k])
    coverage = len(shown) / catalogue_items if catalogue_items else None
    evaluation = Evaluation(per_query_metrics(hits[judged], n_rel[judged]), k, coverage)
    metrics = evaluation.metrics()
    metrics.pop("users")
    for column, name in (("ndcg", f"ndcg_at_{k}"), ("hit", f"hit_rate_at_{k}")):
        metrics[f"{name}_low"], metrics[f"{name}_high"] = bootstrap_interval(evaluation.per_user[column].to_numpy())
    return {
        **metrics,
        "candidate_recall": float(np.mean(per_q["found"].to_numpy()[judged] / n_rel[judged])),
        "queries": float(judged.sum()),
    }


def pr_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """PR-AUC as scikit-learn's ``average_precision_score`` of 0/1 labels ``y`` and scores ``p``
    (same length); None with one class only. The churn headline, alone: the gate's bootstrap
    computes it 400 times per decision, where :func:`classification_metrics` costs five times more."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y).astype(int)
    if not y.size or y.min() == y.max():
        return None
    return float(average_precision_score(y, np.asarray(p, dtype=np.float64)))


def rmse(y: np.ndarray, p: np.ndarray) -> float | None:
    """Root mean squared error of ``p`` against ``y`` (same length; label units); None when empty."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else None


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, log loss; NaN-free or empty."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return {}
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "positive_rate": float(y.mean()),
        "examples": float(len(y)),
    }
    if np.all((p >= 0) & (p <= 1)):
        out["brier"] = float(brier_score_loss(y, p))
        out["log_loss"] = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    return out


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, mean Poisson deviance and Spearman's rank correlation of count predictions.

    Empty for no examples. Poisson deviance (scikit-learn's ``mean_poisson_deviance``) needs
    positive predictions: they are floored at 1e-6 (a prediction of exactly zero for a user who
    did come back is infinitely wrong under it, and says so with a very large number instead).
    Spearman's correlation (``scipy.stats.spearmanr``) is left out when either side is constant.
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_poisson_deviance

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    error = rmse(y, p)
    if error is None:
        return {}
    out = {
        "mae": float(mean_absolute_error(y, p)),
        "rmse": error,
        "poisson_deviance": float(mean_poisson_deviance(y, np.maximum(p, 1e-6))),
        "mean_label": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "examples": float(len(y)),
    }
    if len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0:
        out["spearman"] = float(spearmanr(y, p).statistic)
    return out


def lift(
    metrics: dict[str, float], baseline: dict[str, float], names: tuple[str, ...], lower_is_better: tuple[str, ...] = ()
) -> dict[str, float]:
    """Relative improvement over the baseline, per metric (``<name>_lift``; positive is better).

    ``model / baseline - 1`` for metrics where higher is better; ``1 - model / baseline`` (the
    share of the baseline's error removed) for those in ``lower_is_better``.
    """
    out = {}
    for n in names:
        b = baseline.get(n)
        if n in metrics and b:
            out[f"{n}_lift"] = 1.0 - metrics[n] / b if n in lower_is_better else metrics[n] / b - 1.0
    return out
