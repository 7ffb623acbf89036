"""The API shape of kinds that score users one number each (churn, engagement), shared by them."""

from __future__ import annotations

from typing import Any

from ml.models.kinds.base import NotServable, Served, ServingContext


def score_users(user_ids: list[str], ctx: ServingContext, *, kind: str, mart: str, field: str, endpoint: str) -> Served:
    """``field`` for each user from the tenant's champion (or challenger arm); None for users without features.

    Raises:
        NotServable: the tenant has no published features or no champion of ``kind`` yet.
    """
    feats, champion = ctx.features, ctx.model("champion")
    if feats is None or champion is None:
        raise NotServable(
            f"no_{kind}_model",
            f"tenant {ctx.tenant_id} has no {kind} champion or no published features "
            "yet: run the features and train DAGs",
        )
    table = feats.tables[mart]
    by_arm: dict[str, list[tuple[int, int]]] = {"champion": [], "challenger": []}
    scores: list[dict[str, Any]] = []
    for pos, user in enumerate(user_ids):
        rows = table.rows(user)
        scores.append({"user_id": user, field: None, "arm": None, "model_version": None})
        if rows is not None:
            by_arm[ctx.arm(user)].append((pos, rows.start))
    for arm, picks in by_arm.items():
        if not picks:
            continue
        model = ctx.model(arm) or champion
        x = table.matrix[[r for _, r in picks]][:, model.columns_in(table.columns)]
        for (pos, _), p in zip(picks, model.predict(x), strict=True):
            scores[pos].update({field: float(p), "arm": arm, "model_version": model.version})
    body = {
        "tenant_id": ctx.tenant_id,
        "model": champion.name,
        "scores": scores,
        "unknown_users": sum(s[field] is None for s in scores),
    }
    log = {
        "endpoint": endpoint,
        "users": len(user_ids),
        "model_name": champion.name,
        "model_version": champion.version,
        "arms": {a: len(p) for a, p in by_arm.items()},
        "features_snapshot": feats.snapshot_id,
    }
    return Served(body, f"v{champion.version}", log)
