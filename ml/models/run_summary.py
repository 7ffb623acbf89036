"""What a training run's competition stood on, read back from the params and metrics it logged
(``status``, ``models list`` and the registry's :func:`ml.models.registry.describe` show it)."""

from __future__ import annotations

from typing import Any


def holdout_summary(params: dict[str, str], metrics: dict[str, float], headline: str) -> dict[str, Any] | None:
    """What a run's competition stood on, from its params and metrics (None before holdouts were logged):
    ``users``, ``protocol``, ``families_protocol`` and ``temporal_judged_share``; where the random protocol
    picked the family, ``random``: the winner's ``headline`` there (``value``) and the strongest popularity
    list's (``baseline``, None if not logged). The read side of :func:`ml.models.tracking._run_metrics` and of
    the training's params (:func:`ml.models.train._ranking_holdout`)."""
    if not params.get("holdout_users"):
        return None
    share = params.get("temporal_judged_share")
    out: dict[str, Any] = {
        "users": int(params["holdout_users"]),
        "protocol": params.get("holdout_protocol"),
        "families_protocol": params.get("families_protocol"),
        "temporal_judged_share": float(share) if share else None,
    }
    if f"random_{headline}" in metrics:
        base = metrics.get(f"baseline_random_{headline}")
        out["random"] = {
            "metric": headline,
            "value": round(metrics[f"random_{headline}"], 4),
            "baseline": round(base, 4) if base is not None else None,
        }
    return out
