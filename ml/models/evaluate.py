"""Offline evaluation: ranking, classification and regression metrics, and lift over a baseline.

Metric names are the same for every tenant (``hit_rate_at_10``, ``roc_auc``, ...) so runs
compare side by side in the MLflow UI. Ranking metrics are computed per query (one user at
one cutoff) over the generated candidates and averaged over every user who clicked anything
in the label window: a user whose clicks the candidates missed counts as a miss, so the
numbers judge candidate generation and re-ranking together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

K = 10


def ranking_metrics(
    frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None = None, k: int = K
) -> dict[str, float]:
    """NDCG@k, HitRate@k, MAP@k, recall of the candidates and catalogue coverage.

    ``frame`` needs ``query_id``, ``item_id``, ``is_clicked`` and ``query_clicked_items`` (the
    items the user clicked in the window, in or out of the candidates).
    """
    df = pd.DataFrame(
        {
            "q": frame["query_id"].to_numpy(),
            "item": frame["item_id"].to_numpy(),
            "y": frame["is_clicked"].to_numpy().astype(np.float64),
            "n_rel": frame["query_clicked_items"].to_numpy().astype(np.float64),
            "s": np.asarray(scores, dtype=np.float64),
        }
    )
    if df.empty:
        return {}
    # ties broken by item id, so equal scores (a constant model) cannot look good by luck
    df = df.sort_values(["q", "s", "item"], ascending=[True, False, True], kind="mergesort")
    df["rank"] = df.groupby("q", sort=False).cumcount() + 1
    top = df[df["rank"] <= k]
    discount = 1.0 / np.log2(top["rank"].to_numpy() + 1.0)
    dcg = pd.Series(top["y"].to_numpy() * discount).groupby(top["q"].to_numpy()).sum()
    n_rel = df.groupby("q", sort=False)["n_rel"].first()
    ideal_len = np.minimum(n_rel.to_numpy(), k).astype(int)
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = pd.Series(ideal_cum[ideal_len], index=n_rel.index)
    ndcg = (dcg.reindex(idcg.index, fill_value=0.0) / idcg).fillna(0.0)
    hits = top.groupby("q", sort=False)["y"].max().reindex(idcg.index, fill_value=0.0)
    # MAP@k: precision at each hit, averaged over min(k, relevant items)
    top_hits_cum = top.groupby("q", sort=False)["y"].cumsum()
    prec = (top["y"] * top_hits_cum / top["rank"]).groupby(top["q"]).sum()
    ap = (prec.reindex(idcg.index, fill_value=0.0) / np.maximum(ideal_len, 1)).fillna(0.0)
    recall = df.groupby("q", sort=False)["y"].sum() / n_rel
    metrics = {
        f"ndcg_at_{k}": float(ndcg.mean()),
        f"hit_rate_at_{k}": float(hits.mean()),
        f"map_at_{k}": float(ap.mean()),
        "candidate_recall": float(recall.clip(upper=1.0).mean()),
        "queries": float(len(idcg)),
    }
    if catalogue_items:
        metrics[f"catalogue_coverage_at_{k}"] = float(top["item"].nunique() / catalogue_items)
    return metrics


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
    from sklearn.metrics import mean_absolute_error, mean_poisson_deviance, root_mean_squared_error

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return {}
    out = {
        "mae": float(mean_absolute_error(y, p)),
        "rmse": float(root_mean_squared_error(y, p)),
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
