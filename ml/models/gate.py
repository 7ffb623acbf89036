"""The promotion gate: whether a new model version replaces the champion, and the record of why.

A new version becomes ``challenger``. It becomes ``champion`` only if it passes the sanity checks
(:mod:`ml.models.sanity`: finite, non-constant predictions; one request scored within the latency budget; the
champion's input schema) and then:

* with no champion yet, beats the kind's baseline on the holdout (:func:`beats_baseline`) with the lower end
  of the 95% bootstrap interval of its lead above zero (an exact tie on the headline, decided by the next lift
  metric, has no lead to take an interval of); where the baseline competes as a servable family (churn's
  ``recency``, engagement's ``same_as_last_window``, :mod:`ml.models.servable_baseline`), training chose a
  learnt model over it only beyond chance, and that family is a first champion as it stands. A young tenant's
  global model whose baseline could not compete (a training window of one class) is a first champion on its
  point lead; on the recommender's competition holdout (:mod:`ml.models.ranking`) the challenger is the
  competition's winner, so it is at least as good as every popularity list and classic family there (where the random
  protocol picked the family, there: ``random_ndcg_at_10``), and a re-ranker won only if it beat the strongest family
  beyond chance;
* otherwise beats the champion, re-scored on the same holdout, by the promotion margin on the kind's headline
  metric (``TENANTFLOW_TRAIN_PROMOTION_MARGIN``, absolute, in the metric's better direction). On the competition
  holdout the margin applies to the lower end of the 95% paired-bootstrap interval of the per-user difference
  (:func:`ml.models.evaluate.paired_bootstrap`): a challenger replaces the champion only when it is better by the
  margin beyond chance. A champion's served fit has seen the holdout: a classic family is re-scored as its recipe
  refitted on the holdout's history, a learnt one as its judged booster (:mod:`ml.models.refit`). Any family that
  is not learnt (a classic family, a servable baseline such as churn's ``recency``) refitted on newer data replaces
  itself. A re-ranker champion cannot be judged by the random protocol; when that protocol decides, its winner
  meets the re-ranker on the temporal holdout it replaced (:func:`versus_reranker_on_temporal`), unless the tenant
  chose the random protocol (its ``holdout_protocol``): then its winner replaces the re-ranker. Where the random
  protocol only picked the family (``families_by`` of a temporal holdout), a family meets a family champion there.

A champion needing features the marts no longer publish (renamed, dropped), or one that may have learnt the
holdout's labels (:func:`ml.models.champion.learnt_the_holdout`: the label window grew) cannot be re-scored: the
challenger is judged as a first champion, and no schema check holds it.

The decision and its reason are tags on the version and the run, and a row of the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.core.settings import Settings, TrainSettings
from ml.models import champion, recsys, registry
from ml.models import evaluate as evaluation
from ml.models.champion import holds_booster, load_family, load_judged_booster, version_family, version_features
from ml.models.fit import LIGHTGBM, Candidate, evaluate, predict
from ml.models.kinds.base import ModelKind
from ml.models.sanity import family_problems, sanity_problems

log = logging.getLogger(__name__)


@dataclass
class GateDecision:
    promote: bool
    reason: str
    champion_version: str | None
    champion_metrics: dict[str, float]  # the champion re-scored on the challenger's holdout


def beats_baseline(kind: ModelKind, metrics: dict[str, float], baseline: dict[str, float]) -> str | None:
    """The metric on which ``metrics`` beat the baseline's, or None if they do not.

    The headline decides; only an exact tie on it passes to the kind's other lift metrics, in
    order. HitRate@10 saturates on small holdouts (any sensible ranking hits every query with a
    clicked candidate), and a ranker that ties popularity there but orders the hits better
    (NDCG@10) is the better model. Anything not strictly better on the deciding metric loses.
    """
    for m in dict.fromkeys((kind.headline, *kind.lift_metrics)):
        new, old = metrics.get(m), baseline.get(m)
        if new is None or old is None:
            return None
        if new == old:
            continue
        return None if kind.improvement(m, new, old) < 0 else m  # (a NaN baseline does not block)
    return None


def headline_interval(
    kind: ModelKind, holdout: pd.DataFrame, scores: np.ndarray, other: np.ndarray, catalogue: int | None
) -> tuple[float, float]:
    """95% bootstrap interval of how far ``scores`` are ahead of ``other`` on the kind's headline
    (positive: better, in the metric's direction), resampling the holdout's examples: for kinds
    whose headline is not a mean over users (PR-AUC, RMSE). Uses 200 resamples."""
    labels, h = holdout[[kind.label]].reset_index(drop=True), kind.headline
    y = labels[kind.label].to_numpy()

    def headline(idx: np.ndarray, s: np.ndarray) -> float | None:
        if kind.headline_metric is not None:
            return kind.headline_metric(y[idx], s[idx])
        return kind.metrics(labels.iloc[idx], s[idx], catalogue).get(h)

    def ahead(idx: np.ndarray) -> float:
        new, old = headline(idx, scores), headline(idx, other)
        return kind.improvement(h, new, old) if new is not None and old is not None else float("nan")

    return evaluation.resampled_interval(ahead, len(labels))


def _beyond_chance(
    kind: ModelKind,
    challenger: Candidate,
    holdout: pd.DataFrame,
    features: list[str],
    other: np.ndarray,
    margin: float,
    strict: bool = False,
) -> tuple[bool, str]:
    """Whether the challenger's lead on the headline holds at the interval's lower end (>= ``margin``;
    ``strict``: > ``margin``, as a first champion's lead over the baseline must be above zero)."""
    if kind.group is not None or challenger.booster is None or holdout.empty:
        return True, ""  # ranking kinds are judged per user on the competition holdout (ml.models.ranking)
    scores = predict(kind, challenger.booster, holdout, features)
    low, high = headline_interval(kind, holdout, scores, np.asarray(other, dtype=np.float64), None)
    return (low > margin if strict else low >= margin), f"lead 95% interval [{low:+.4f}, {high:+.4f}]"


def _first_champion(
    kind: ModelKind,
    challenger: Candidate,
    baseline: dict[str, float],
    holdout: pd.DataFrame | None = None,
    features: list[str] | None = None,
) -> GateDecision:
    h, new = kind.headline, challenger.metrics.get(kind.headline)
    by = f"random_{h}"  # where the random protocol picked the family: its headline
    if challenger.family.startswith("popularity") and new is not None:
        where, value = (
            ("by the random protocol", challenger.metrics[by]) if by in challenger.metrics else ("on the holdout", new)
        )
        why = f"first champion: {challenger.family} is the strongest list {where} ({h} {value:.4f})"
        return GateDecision(True, why, None, {})
    if challenger.family == kind.baseline_name and new is not None:  # ml.models.servable_baseline.choose
        why = f"first champion: {challenger.family}, the baseline made servable ({h} {new:.4f}): no learnt model"
        return GateDecision(True, why + " led it beyond chance on the holdout", None, {})
    if new is None:
        return GateDecision(True, "first champion (no holdout yet: too little labelled history)", None, {})
    if by in challenger.metrics and by in baseline:
        ok, versus = challenger.metrics[by] >= baseline[by], f"{by} {challenger.metrics[by]:.4f} vs the baseline "
        why = f"{challenger.family}, picked by the random protocol: {versus}popularity list's {baseline[by]:.4f}"
        return GateDecision(ok, f"first champion: {why}" if ok else f"{why}, which beats it", None, {})
    if baseline.get(h) is not None:
        decided_by = beats_baseline(kind, challenger.metrics, baseline)
        if decided_by is None:
            why = f"{h} {new:.4f} does not beat the {kind.baseline_name} baseline ({baseline[h]:.4f})"
            return GateDecision(False, why, None, {})
        if (m := decided_by) != h:
            why = f"first champion: {h} {new:.4f} ties the {kind.baseline_name} baseline; {m} "
            return GateDecision(True, f"{why}{challenger.metrics[m]:.4f} vs {baseline[m]:.4f}", None, {})
        if holdout is not None and features is not None:  # a lead within noise does not make a champion
            ok, interval = _beyond_chance(kind, challenger, holdout, features, kind.baseline(holdout), 0.0, strict=True)
            versus = f"{h} {new:.4f} vs {kind.baseline_name} baseline {baseline[h]:.4f}"
            # a young tenant's global model (borrowed: its files are the global version's): its servable baseline
            # competed where it could be fitted (servable_baseline.choose); elsewhere it serves on its point lead
            if not ok and challenger.model_uri is None:
                return GateDecision(False, f"{versus}: the lead is not beyond chance, {interval}", None, {})
            return GateDecision(True, f"first champion: {versus}" + (f", {interval}" if interval else ""), None, {})
    why = f"first champion: {h} {new:.4f} vs {kind.baseline_name} baseline {baseline.get(h, float('nan')):.4f}"
    return GateDecision(True, why, None, {})


def gate(
    kind: ModelKind,
    name: str,
    challenger: Candidate,
    holdout: pd.DataFrame,
    features: list[str],
    catalogue: int | None,
    baseline: dict[str, float],
    policy: TrainSettings,
    settings: Settings,
    ranking: Any = None,
) -> GateDecision:
    """Decide whether the challenger replaces the champion (see the module docstring).

    ``ranking``: the recommender's competition holdout (:class:`ml.models.ranking.RankingHoldout`), if any.
    """
    champ = registry.version_by_alias(name, registry.CHAMPION, settings)
    champ_booster_schema = champ is not None and holds_booster(version_family(champ))
    # a champion whose inputs the marts no longer publish (renamed, dropped) cannot serve or be judged
    gone = sorted(set(version_features(champ) or []) - set(features)) if champ_booster_schema and features else []
    if challenger.booster is not None:
        schema = version_features(champ) if champ_booster_schema and not gone else None
        baseline_family = challenger.family == kind.baseline_name
        served = challenger.served or challenger.booster  # what goes live (ml.models.refit)
        problems = sanity_problems(kind, served, holdout, features, policy, schema, baseline_family)
    else:
        problems = family_problems(challenger, ranking, policy)
    if problems:
        return GateDecision(False, "; ".join(problems), str(champ.version) if champ else None, {})
    if champ is None:
        return _first_champion(kind, challenger, baseline, holdout, features)
    v = str(champ.version)
    unjudgeable = f"champion v{v} needs features the marts no longer have {gone}" if gone else None
    if unjudgeable := unjudgeable or champion.learnt_the_holdout(champ, holdout):
        first = _first_champion(kind, challenger, baseline, holdout, features)
        return GateDecision(first.promote, f"{unjudgeable}, so judged as a first champion: {first.reason}", v, {})
    same_recipe = (
        champ.tags.get("trained_on") == challenger.trained_on
        and champ.tags.get("global_version") == (challenger.global_version or "")
        and version_family(champ) == challenger.family
    )
    named = named_champion(v, version_family(champ), champ.tags.get("trained_on"))
    if same_recipe and champ.tags.get("snapshot_id") == challenger.snapshot_id:
        return GateDecision(False, f"{challenger.described}: same data, same recipe as {named}", v, {})
    if same_recipe and challenger.family != LIGHTGBM:  # a classic family, a servable baseline: nothing learnt to judge
        return GateDecision(
            True, f"{challenger.described} refitted on newer data (snapshot {challenger.snapshot_id})", v, {}
        )
    if ranking is not None and challenger.per_user is not None:
        return _versus_champion(kind, name, champ, challenger, ranking, features, policy, settings)
    champ_booster = load_judged_booster(name, v, settings)  # not its refit: ml.models.refit
    champ_metrics = evaluate(kind, champ_booster, holdout, features, catalogue)
    h, m = kind.headline, policy.promotion_margin
    new, old = challenger.metrics.get(h), champ_metrics.get(h)
    if new is None or old is None:
        # no holdout for this tenant: follow the global champion when that is what it serves
        if challenger.trained_on == "global" and champ.tags.get("trained_on") == "global":
            return GateDecision(True, f"global champion moved to v{challenger.global_version}", v, {})
        return GateDecision(False, f"{challenger.described}: no holdout to compare with {named}", v, champ_metrics)
    ahead = kind.improvement(h, new, old)  # > 0: the challenger is better, whichever way the headline goes
    versus = f"{challenger.described}: {h} {new:.4f} vs {named} at {old:.4f}: {_lead(ahead)}"
    if ahead < m:
        return GateDecision(False, f"{versus}, less than the margin {m}", v, champ_metrics)
    champ_scores = predict(kind, champ_booster, holdout, features)
    ok, interval = _beyond_chance(kind, challenger, holdout, features, champ_scores, m)
    if not ok:
        why = f"{versus}, but not beyond chance: its {interval} reaches below the margin {m}"
        return GateDecision(False, why, v, champ_metrics)
    why = f"{versus}, at least the margin {m}" + (f", {interval}" if interval else "")
    return GateDecision(True, why, v, champ_metrics)


def _lead(ahead: float) -> str:
    """``better by 0.01234`` / ``worse by …`` / ``no better``: five decimals, so that a lead just under a margin of
    0.002 never prints as the margin itself."""
    return f"better by {ahead:.5f}" if ahead > 0 else f"worse by {-ahead:.5f}" if ahead < 0 else "no better"


def _versus_champion(
    kind: ModelKind,
    name: str,
    champ: Any,
    challenger: Candidate,
    ranking: Any,
    features: list[str],
    policy: TrainSettings,
    settings: Settings,
) -> GateDecision:
    """The competition holdout's rule (module docstring): paired bootstrap against the champion."""
    v, family = str(champ.version), version_family(champ)
    named = named_champion(v, family, champ.tags.get("trained_on"))
    off_protocol = family == LIGHTGBM and ranking.protocol != "temporal"
    if off_protocol and ranking.chosen_by_tenant:  # (with or without a temporal holdout to meet on)
        why = f"{challenger.described} won the {ranking.protocol} protocol the tenant chose, which cannot judge {named}"
        return GateDecision(True, f"{why}, a re-ranker (its features are point in time): replaced", v, {})
    if off_protocol and ranking.temporal is None:
        why = f"{challenger.described}: {named} is a re-ranker, which the {ranking.protocol} protocol cannot judge"
        return GateDecision(False, why + " (its features are point in time) and no temporal holdout: kept", v, {})
    if family == LIGHTGBM:
        own, booster = version_features(champ) or features, load_judged_booster(name, v, settings)  # its own columns
        if off_protocol:
            return versus_reranker_on_temporal(kind, v, booster, own, challenger, ranking, named)
        lists = ranking.reranker_lists(predict(kind, booster, ranking.examples, own))
        mine, judged = challenger.per_user, ranking.judge(lists)
    else:
        try:
            ranking, mine, judged = family_versus_family(
                load_family(name, v, settings), challenger, ranking, policy.threads
            )
        except recsys.CatalogueTooLarge as e:  # EASE once the catalogue outgrew it: nothing to judge or refresh
            why = f"{challenger.described}, the competition's winner: {named} no longer fits this tenant"
            return GateDecision(True, f"{why} ({e}): replaced", v, {})
    assert mine is not None
    mean, low, high = evaluation.paired_bootstrap(mine, judged.per_user_ndcg)
    h, m = kind.headline, policy.promotion_margin
    versus = (
        f"{challenger.described} at {float(np.mean(mine)):.4f} vs {named} at {judged.metrics[h]:.4f} on the "
        f"{ranking.protocol} protocol's {len(ranking.users):,} users: {_paired(h, mean, low, high)}"
    )
    if low >= m:
        return GateDecision(True, f"{versus}, whose lower end clears the margin {m}", v, judged.metrics)
    return GateDecision(False, f"{versus}, whose lower end is below the margin {m}", v, judged.metrics)


def _paired(headline: str, mean: float, low: float, high: float) -> str:
    """A paired bootstrap's reading: ``ndcg_at_10 worse by 0.00080 a user on average (95% interval of the difference
    [-0.0059, +0.0040])`` (:func:`ml.models.evaluation.paired_bootstrap`: challenger minus champion, per user)."""
    return f"{headline} {_lead(mean)} a user on average (95% interval of the difference [{low:+.4f}, {high:+.4f}])"


def family_versus_family(
    champion_family: recsys.Recommender, challenger: Candidate, ranking: Any, threads: int = 1
) -> tuple[Any, np.ndarray | None, Any]:
    """Where a classic family champion meets the challenger: the random protocol's holdout where that
    protocol picked the challenger's family (``ranking.families_by``; the challenger's
    ``random_per_user``), else the competition holdout (``per_user``). Returns that holdout, the
    challenger's per-user nDCG on it and the champion's recipe (refitted on its history, on ``threads``, the
    training's) judged there."""
    mine = challenger.per_user
    if challenger.random_per_user is not None and ranking.families_by is not None:
        ranking, mine = ranking.families_by, challenger.random_per_user
    recipe = recsys.fitted(recsys.unfitted(champion_family, threads), ranking.history)
    return ranking, mine, ranking.judge(ranking.family_lists(recipe))


def named_champion(version: str, family: str, trained_on: str | None) -> str:
    """``champion v1 (lightgbm, tenant)``: a champion as the gate's reasons (and status) name a version; its
    family alone where the version has no ``trained_on`` tag."""
    return f"champion v{version} ({champion.version_label(family, trained_on)})"


def versus_reranker_on_temporal(
    kind: ModelKind,
    v: str,
    booster: Any,
    features: list[str],
    challenger: Candidate,
    ranking: Any,
    named: str | None = None,
) -> GateDecision:
    """A re-ranker champion (version ``v``) against a classic family chosen by the random protocol
    (``ranking``), which cannot judge the re-ranker: its features are point in time. They meet on
    the temporal holdout the random one replaced (``ranking.temporal``; the challenger's recipe
    refitted on its history), the only users the champion can be judged on. The champion stays only
    when it is better there beyond chance (the 95% paired-bootstrap interval of challenger minus
    champion lies below zero); otherwise the protocol that speaks for the tenant's users decides,
    and the challenger, its winner, replaces it. ``named``: how the reasons name the champion (default
    ``champion v<v> (lightgbm)``)."""
    temporal, named = ranking.temporal, named or named_champion(v, LIGHTGBM, None)
    theirs = temporal.judge(temporal.reranker_lists(predict(kind, booster, temporal.examples, features)))
    recipe = recsys.fitted(recsys.unfitted(challenger.recommender), temporal.history)
    mine = temporal.judge(temporal.family_lists(recipe))
    mean, low, high = evaluation.paired_bootstrap(mine.per_user_ndcg, theirs.per_user_ndcg)
    h = kind.headline
    versus = (
        f"{challenger.described} won the {ranking.protocol} protocol, which cannot judge {named}, a re-ranker; "
        f"on the {len(temporal.users):,} users of the temporal holdout it replaced, against the champion at "
        f"{theirs.metrics[h]:.4f}: {_paired(h, mean, low, high)}"
    )
    if high < 0:
        return GateDecision(False, f"{versus}: the champion is better there beyond chance, kept", v, {})
    why = f"{versus}: not worse beyond chance, so the protocol that judges the users decides"
    return GateDecision(True, why, v, {})


def record_decision(
    kind: ModelKind, tenant_id: str, name: str, version: str, run_id: str, decision: GateDecision, settings: Settings
) -> None:
    """Apply a decision: promote (audited), or make the version challenger and audit the refusal; tag both."""
    c = registry.client(settings)
    c.set_model_version_tag(name, version, "run_id", run_id)
    if decision.champion_version:  # its champion.* metrics are that version re-scored on this holdout
        c.set_tag(run_id, "gate.champion_version", decision.champion_version)
    if decision.promote:
        registry.promote(kind.name, tenant_id, version, decision.reason, settings)
    else:
        registry.make_challenger(kind.name, tenant_id, version, decision.champion_version, decision.reason, settings)
        c.set_model_version_tag(name, version, "gate.decision", "refused")
        c.set_model_version_tag(name, version, "gate.reason", decision.reason[:4000])
    c.set_tag(run_id, "gate.decision", "promoted" if decision.promote else "refused")
    c.set_tag(run_id, "gate.reason", decision.reason[:4000])
    for k, val in decision.champion_metrics.items():
        c.log_metric(run_id, f"champion.{k}", float(val))
