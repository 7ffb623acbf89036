"""Offline evaluation: ranking and classification metrics, baselines, plots.

Metric names are the same for every tenant (``hit_rate_at_10``, ``roc_auc``, ...) so runs
compare side by side in the MLflow UI. Ranking metrics are computed per query (one user at
one cutoff) over the generated candidates and averaged over every user who clicked anything
in the label window: a user whose clicks the candidates missed counts as a miss, so the
numbers judge candidate generation and re-ranking together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

K = 10


def ranking_metrics(frame: pd.DataFrame, scores: np.ndarray, catalogue_items: int | None = None, k: int = K) -> dict[str, float]:
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


def lift(metrics: dict[str, float], baseline: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """Relative improvement over the baseline, per metric (``<name>_lift``)."""
    out = {}
    for n in names:
        b = baseline.get(n)
        if n in metrics and b:
            out[f"{n}_lift"] = metrics[n] / b - 1.0
    return out


def _pyplot():
    """pyplot on the file-only backend (tasks and tests have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight: bool = True) -> Path:
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=72, pil_kwargs={"compress_level": 1})  # one of these per trained model: keep it cheap
    plt.close(fig)
    return path


def plot_calibration(y: np.ndarray, p: np.ndarray, path: Path, title: str) -> Path:
    """Reliability diagram: predicted churn probability against the observed rate, by decile."""
    plt = _pyplot()
    df = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    df["bin"] = pd.qcut(df["p"].rank(method="first"), q=min(10, len(df)), labels=False)
    agg = df.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    lim = max(agg["p"].max(), agg["y"].max(), 0.05) * 1.05
    ax.plot([0, lim], [0, lim], color="grey", lw=1, ls="--", label="perfectly calibrated")
    ax.plot(agg["p"], agg["y"], marker="o", label="model (deciles)")
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", title=title, xlim=(0, lim), ylim=(0, lim))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_importance(names: list[str], gain: np.ndarray, contributions: np.ndarray, path: Path, title: str) -> Path:
    """Feature importance (gain) beside the mean |contribution| (LightGBM's SHAP values)."""
    plt = _pyplot()
    order = np.argsort(contributions)
    fig, axes = plt.subplots(1, 2, figsize=(10, max(3.0, 0.28 * len(names))), sharey=True)
    y = np.arange(len(names))
    axes[0].barh(y, np.asarray(gain)[order] / max(float(np.sum(gain)), 1e-12))
    axes[0].set(yticks=y, yticklabels=[names[i] for i in order], xlabel="share of total gain", title="importance (gain)")
    axes[1].barh(y, np.asarray(contributions)[order], color="tab:orange")
    axes[1].set(xlabel="mean |SHAP contribution|", title="SHAP summary")
    fig.suptitle(title)
    # margins from the longest feature name instead of tight_layout (a quarter of this plot's
    # cost, paid once per trained model)
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(left=min(0.5, (0.3 + 0.075 * max(map(len, names), default=0)) / width), right=0.98,
                        wspace=0.06, top=0.88, bottom=max(0.08, 0.55 / fig.get_size_inches()[1]))  # fmt: skip
    return _save(fig, path, tight=False)


def plot_ranking_comparison(model: dict[str, float], baseline: dict[str, float], path: Path, title: str, k: int = K) -> Path:
    """The model's holdout ranking metrics beside the popularity baseline's."""
    plt = _pyplot()
    names = [f"hit_rate_at_{k}", f"ndcg_at_{k}", f"map_at_{k}", f"catalogue_coverage_at_{k}"]
    names = [n for n in names if n in model and n in baseline]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, [model[n] for n in names], width=0.4, label="re-ranker")
    ax.bar(x + 0.2, [baseline[n] for n in names], width=0.4, label="popularity")
    ax.set(xticks=x, xticklabels=names, title=title)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend()
    return _save(fig, path)
