"""When a model is due for retraining: what a run started by new features leaves alone.

A run of the ``train`` DAG started by new features (reason ``features``) retrains only what is
due: a model without a champion, a champion older than ``TENANTFLOW_TRAIN_RETRAIN_EVERY_DAYS``
or trained on another dbt project, and a tenant graduating from the global model. Any run leaves
a champion alone when it was trained on the very snapshot at hand (:func:`unchanged`), unless
forced (a person's ``force``, a drift retrain, an erasure).
"""

from __future__ import annotations

import time
from typing import Any

from ml.core.settings import Settings, TrainSettings
from ml.models import registry


def champion_and_challenger(kind: str, owner: str, settings: Settings) -> tuple[Any, Any]:
    """The versions behind ``<kind>.<owner>``'s champion and challenger aliases (either may be None)."""
    name = registry.model_name(kind, owner)
    return (
        registry.version_by_alias(name, registry.CHAMPION, settings),
        registry.version_by_alias(name, registry.CHALLENGER, settings),
    )


def not_due(champ: Any, manifest_hash: str, policy: TrainSettings, graduating: bool = False) -> str | None:
    """Why a feature-triggered run leaves this champion alone, or None when it is due."""
    if champ is None or graduating or champ.tags.get("manifest_hash") != manifest_hash:
        return None
    age_days = (time.time() - champ.creation_timestamp / 1000) / 86_400
    if age_days >= policy.retrain_every_days:
        return None
    return (
        f"not due: champion v{champ.version} is {age_days:.1f} days old (retrain every {policy.retrain_every_days:g} "
        f"days; drift retrains come from the monitor)"
    )


def graduating(champ: Any, history_days: int, policy: TrainSettings) -> bool:
    """Served by the global model because the tenant was too young (not because the global model
    won on its holdout), and now old enough to try a model of its own."""
    return (
        champ is not None
        and champ.tags.get("trained_on") == "global"
        and champ.tags.get("eligible_for_own_model", "false") == "false"
        and history_days >= policy.min_history_days
    )


def unchanged(champ: Any, challenger: Any, g: Any, snapshot_id: str, own_global: bool = False) -> str | None:
    """Why any run (not forced) leaves the model alone: its champion, or the challenger the gate
    refused, was trained on this very snapshot (and, when it is served by the global model, on the
    global model's current version) — training again would remake the same model. None when it is
    not. ``own_global`` marks the global model itself, which has no global version to compare.
    """
    if _trained_on(champ, g, snapshot_id, own_global):
        return f"unchanged snapshot {snapshot_id}"
    if _trained_on(challenger, g, snapshot_id, own_global):
        return (
            f"unchanged snapshot {snapshot_id}: challenger v{challenger.version} was trained on it and refused "
            "by the gate (force to retrain)"
        )
    return None


def _trained_on(version: Any, g: Any, snapshot_id: str, own_global: bool) -> bool:
    if version is None or version.tags.get("snapshot_id") != snapshot_id:
        return False
    return (
        own_global
        or version.tags.get("trained_on") != "global"
        or (g is not None and version.tags.get("global_version") == str(g.version))
    )
