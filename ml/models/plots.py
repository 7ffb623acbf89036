"""Plots logged with each training run: calibration, importance and SHAP, holdout vs baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

K = 10


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
    """Reliability diagram: the mean prediction against the mean label, by decile of prediction."""
    plt = _pyplot()
    df = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    df["bin"] = pd.qcut(df["p"].rank(method="first"), q=min(10, len(df)), labels=False)
    agg = df.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    lim = max(agg["p"].max(), agg["y"].max(), 0.05) * 1.05
    ax.plot([0, lim], [0, lim], color="grey", lw=1, ls="--", label="perfectly calibrated")
    ax.plot(agg["p"], agg["y"], marker="o", label="model (deciles)")
    ax.set(xlabel="mean prediction", ylabel="mean observed label", title=title, xlim=(0, lim), ylim=(0, lim))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_importance(names: list[str], gain: np.ndarray, contributions: np.ndarray, path: Path, title: str) -> Path:
    """Feature importance (gain) beside the mean |contribution| (LightGBM's SHAP values)."""
    plt = _pyplot()
    order = np.argsort(contributions)
    fig, axes = plt.subplots(1, 2, figsize=(10, max(3.0, 0.28 * len(names))), sharey=True)
    y = np.arange(len(names))
    axes[0].barh(y, np.asarray(gain)[order] / max(float(np.sum(gain)), 1e-12))
    axes[0].set(
        yticks=y, yticklabels=[names[i] for i in order], xlabel="share of total gain", title="importance (gain)"
    )
    axes[1].barh(y, np.asarray(contributions)[order], color="tab:orange")
    axes[1].set(xlabel="mean |SHAP contribution|", title="SHAP summary")
    fig.suptitle(title)
    # margins from the longest feature name instead of tight_layout (a quarter of this plot's
    # cost, paid once per trained model)
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(
        left=min(0.5, (0.3 + 0.075 * max(map(len, names), default=0)) / width),
        right=0.98,
        wspace=0.06,
        top=0.88,
        bottom=max(0.08, 0.55 / fig.get_size_inches()[1]),
    )
    return _save(fig, path, tight=False)


def plot_ranking_comparison(
    model: dict[str, float], baseline: dict[str, float], path: Path, title: str, k: int = K
) -> Path:
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
