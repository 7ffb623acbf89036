"""When a model is due for retraining: what a run started by new features leaves alone.

A run of the ``train`` DAG started by new features (reason ``features``) retrains only what is
due: a model without a champion, a champion older than ``TENANTFLOW_TRAIN_RETRAIN_EVERY_DAYS``
or trained on another dbt project, and a tenant graduating: served as a young tenant (by the
global model, its baseline or a classic family) and now old enough for a model of its own. Any run leaves
a champion alone when it was trained on the very snapshot at hand (:func:`unchanged`), unless
forced (a person's ``force``, a drift retrain, an erasure).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ml.core.contract import INTERACTION_EVENT_TYPES
from ml.core.settings import Settings, TrainSettings
from ml.models import registry


def champion_and_challenger(kind: str, owner: str, settings: Settings) -> tuple[Any, Any]:
    """The versions behind ``<kind>.<owner>``'s champion and challenger aliases (either may be None)."""
    name = registry.model_name(kind, owner)
    return (
        registry.version_by_alias(name, registry.CHAMPION, settings),
        registry.version_by_alias(name, registry.CHALLENGER, settings),
    )


# the tenant's feature windows a version's inputs were counted over (int_tenant_windows), the days
# after a cutoff its labels counted (the kind's label window: ModelKind.label_days), and the rule its
# interactions were counted by (int_tenant_windows.min_rating: the lowest positive rating;
# .interaction_types: the event types that are interactions), as version tags
# (a global version: member_rules, its members' rules)
WINDOW_TAGS = (
    "feature_window_days", "short_window_days", "label_days", "min_rating", "interaction_types", "member_rules"
)  # fmt: skip


# the rule a version from before a rule's tag is taken to have learnt by: the platform's. The tenant tags came
# with the settings (cbbb662, 9c899b4); member_rules came later (f7ff4d1), so a global version of the hours
# between may have learnt a member's own rule already and retrains needlessly (the safe side). Such a version
# stays due until one that carries the tag is champion (a refused retrain leaves it serving).
PLATFORM_RULES = {"min_rating": "any", "interaction_types": ",".join(INTERACTION_EVENT_TYPES), "member_rules": "-"}


def member_rules(members: list[tuple[Any, Any]]) -> str:
    """The interaction rules of a global model's members (``(tenant, snapshot)`` pairs) that count theirs
    otherwise than the platform: the ``min_rating`` and ``interaction_types`` of each snapshot's windows
    (``int_tenant_windows``), as a 16-hex-digit digest (``-`` when every member counts the platform's way).
    The global model learns each member's labels by its own rule: a change makes the global model due."""
    own = sorted(
        f"{t.tenant_id}:{rule}={s.windows.get(rule)}"
        for t, s in members
        for rule in ("min_rating", "interaction_types")
        if s.windows.get(rule) is not None and str(s.windows.get(rule)) != PLATFORM_RULES[rule]
    )
    return hashlib.sha256(";".join(own).encode()).hexdigest()[:16] if own else "-"


def not_due(
    champ: Any, manifest_hash: str, policy: TrainSettings, graduating: bool = False, windows: dict | None = None
) -> str | None:
    """Why a feature-triggered run leaves this champion alone, or None when it is due: also when
    the tenant's ``windows`` (the snapshot's, with the kind's ``label_days``) are no longer those
    of the champion's inputs or labels (a setting changed, or its cadence crossed a week): the same
    columns now count other days, or its predictions are about another window than it learned;
    and when its ``min_rating`` or ``interaction_types`` changed (other interactions are positive), or a
    global version's members' rules (``member_rules``). A version without a rule's tag learnt by the
    platform's rule (:data:`PLATFORM_RULES`); one without a window's tag is left alone."""
    if champ is None or graduating or champ.tags.get("manifest_hash") != manifest_hash:
        return None
    now, tags = windows or {}, PLATFORM_RULES | dict(champ.tags)
    if any(tag in tags and now.get(tag) is not None and tags[tag] != str(now[tag]) for tag in WINDOW_TAGS):
        return None
    age_days = (time.time() - champ.creation_timestamp / 1000) / 86_400
    if age_days >= policy.retrain_every_days:
        return None
    return (
        f"not due: champion v{champ.version} is {age_days:.1f} days old (retrain every {policy.retrain_every_days:g} "
        f"days; drift retrains come from the monitor)"
    )


def graduating(champ: Any, history_days: int, policy: TrainSettings) -> bool:
    """Served by the global model (or, where that did not beat it beyond chance, by the kind's
    servable baseline or a classic family) because the tenant was too young (the version's
    ``history_days`` tag; a version without one is taken as young), and now old enough to try a
    model of its own. A tenant refused its own model for too few labelled examples, not for its
    age, does not graduate by growing older: the retraining cadence retrains it."""
    return (
        champ is not None
        and champ.tags.get("eligible_for_own_model", str(champ.tags.get("trained_on") != "global").lower()) == "false"
        and int(champ.tags.get("history_days", 0)) < policy.min_history_days <= history_days
    )


def unchanged(champ: Any, challenger: Any, g: Any, snapshot_id: str, own_global: bool = False) -> str | None:
    """Why any run (not forced) leaves the model alone: its champion, or the challenger the gate
    refused, was trained on this very snapshot (and, when the global model serves it or a young
    tenant's candidates met it, on the global model's current version) — training again would
    remake the same model. None when it is
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
    """Whether ``version`` was made from this snapshot and, where the global model ``g`` took part
    (it serves the tenant, or a young tenant's candidates met it: tag ``global_judged``), from its
    current version."""
    if version is None or version.tags.get("snapshot_id") != snapshot_id:
        return False
    current = str(g.version) if g is not None else ""
    if own_global:
        return True
    if version.tags.get("trained_on") == "global":
        return g is not None and version.tags.get("global_version") == current
    if version.tags.get("eligible_for_own_model") == "false":
        return version.tags.get("global_judged", "") == current
    return True
