"""The candidates of a tenant's training (:func:`tenant_candidates`), and whether it may train a model of
its own (:func:`eligible_for_own_model`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from ml.core.settings import Settings, TrainSettings
from ml.data import snapshots
from ml.models import servable_baseline
from ml.models.champion import labels_learnt, learnt_the_holdout, load_judged_booster, version_family, version_features
from ml.models.fit import LIGHTGBM, Candidate, evaluate, fit
from ml.models.kinds.base import ModelKind

log = logging.getLogger(__name__)


def tenant_candidates(
    kind: ModelKind,
    tenant_id: str,
    g: Any,
    features: list[str],
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    catalogue: int | None,
    eligible: bool,
    policy: TrainSettings,
    settings: Settings,
) -> list[Candidate]:
    """The candidates of one tenant's training, each scored on its holdout: the global champion
    ``g`` (a ``ModelVersion``, when its features match ``features``), the kind's servable baseline
    (:mod:`ml.models.servable_baseline`; a young tenant's too, so that the global model serves it
    only where it beats that baseline beyond chance, and its baseline serves it where there is no
    global model yet), and when the tenant is ``eligible`` (:func:`eligible_for_own_model`) a model fine-tuned
    from the global one (when that is a learnt model) and a tenant-only model. The recommender's
    classic families join later (:func:`ml.models.ranking.compete`)."""
    candidates: list[Candidate] = []
    global_booster = None
    if g is not None and (learnt := learnt_the_holdout(g, holdout)):  # a member whose label window grew
        log.warning("tenant %s: %s; neither it nor a model fine-tuned from it is judged here", tenant_id, learnt)
    elif g is not None and version_features(g) == features:
        global_booster = load_judged_booster(g.name, str(g.version), settings)  # holdout-free: ml.models.refit
        c = Candidate(
            "global", global_booster, model_uri=g.source, global_version=str(g.version), family=version_family(g)
        )
        tags = g.tags or {}  # the global model refitted for serving: ml.models.refit
        c.judged_model, c.refit_cutoffs = bool(tags.get("judged_model")), tags.get("refit_cutoffs", "")
        mine = labels_learnt(g).get(tenant_id)  # it learnt this tenant's labels
        c.learnt_until = {tenant_id: mine} if mine else {}
        c.metrics = evaluate(kind, global_booster, holdout, features, catalogue)
        candidates.append(c)
    elif g is not None:
        log.warning("tenant %s: global %s v%s has other features; not used", tenant_id, kind.name, str(g.version))
    base = servable_baseline.candidate(kind, train, holdout, features, catalogue, policy)
    if not eligible:
        return candidates + ([base] if base is not None else [])
    learnt_global = global_booster if g is not None and version_family(g) == LIGHTGBM else None
    for trained_on, init in (("fine_tuned", learnt_global), ("tenant", None)):
        if trained_on == "fine_tuned" and init is None:
            continue  # no global model, or one that is its baseline: nothing learnt to start from
        t0 = time.perf_counter()
        booster = fit(kind, train, features, policy, init_model=init)
        fine_tuned_from = str(g.version) if trained_on == "fine_tuned" and g else None
        c = Candidate(trained_on, booster, seconds=time.perf_counter() - t0, global_version=fine_tuned_from)
        c.metrics = evaluate(kind, booster, holdout, features, catalogue)
        candidates.append(c)
    return candidates + ([base] if base is not None else [])


def eligible_for_own_model(
    kind: ModelKind, snap: snapshots.Snapshot, train: pd.DataFrame, holdout: pd.DataFrame, policy: TrainSettings
) -> tuple[bool, str]:
    """(whether the tenant may train a model of its own, why not): enough days of history
    (``TENANTFLOW_TRAIN_MIN_HISTORY_DAYS``) and the kind's minimum labelled positives in the
    training window and the holdout."""
    if snap.history_days < policy.min_history_days:
        return False, f"{snap.history_days} days of history (< {policy.min_history_days})"
    if kind.positives(train) < kind.min_train_positives:
        return False, f"{kind.positives(train)} labelled positives to train on (< {kind.min_train_positives})"
    if kind.positives(holdout) < kind.min_holdout_positives:
        return False, f"{kind.positives(holdout)} labelled positives in the holdout (< {kind.min_holdout_positives})"
    return True, ""
