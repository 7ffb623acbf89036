"""Training: the global model, then per-tenant models, each logged to MLflow and gated.

The flow for one model kind (see :mod:`ml.models.kinds`):

1. **Global, one per region.** Trained on the training cutoffs of the region's tenants with
   ``share_data = yes`` (never a silo: onboarding refuses silo + share), so no tenant's data
   trains a model outside its region. Registered as ``<kind>.global.<region>``.
2. **Per tenant** (candidates: :mod:`ml.models.tenant_candidates`). A tenant with too little
   history (``TENANTFLOW_TRAIN_MIN_HISTORY_DAYS``, and the kind's minimum labelled examples) is
   served by its global champion (its own region's, or the region its registry entry opted in
   to: ``Tenant.global_model_region``): its registered model gets a version pointing at the
   global model's files, tagged ``trained_on=global`` — for a kind whose baseline is servable
   (:mod:`ml.models.servable_baseline`) only where that beats the baseline fitted on the tenant's
   own labels beyond chance, else the baseline is its version; the recommender's young tenant
   meets its classic families (:mod:`ml.models.ranking`). Otherwise two candidates are trained on
   the tenant's own snapshot, one continued from a learnt global model (LightGBM ``init_model``:
   parameters travel to the tenant, its data never travels back) and one from scratch; the global
   model and the baseline compete too, and whichever is best on the tenant's time-based holdout
   (its last labelled cutoff) becomes the new version: a learnt winner refitted on the newest
   labelled cutoffs for serving (:mod:`ml.models.refit`), as a region's global model is.
3. **Gate.** The new version is ``challenger``; :mod:`ml.models.gate` decides whether it becomes ``champion``.

A run started by new features (reason ``features``) retrains only what is due (:mod:`ml.models.due`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from functools import partial
from typing import Any, NamedTuple

import pandas as pd

from ml.core import erasure_marks, lineage
from ml.core.settings import Settings, TrainSettings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.data import snapshots
from ml.models import ranking, ranking_holdout, registry, sanity, servable_baseline
from ml.models.champion import learnt_the_holdout, version_family
from ml.models.due import champion_and_challenger, graduating, member_rules, not_due, unchanged
from ml.models.fit import (
    Candidate,
    baseline_metrics,
    catalogue_size,
    evaluate,
    fair_shares,
    feature_names,
    fit,
    load_examples,
    sample_rows,
    time_holdout,
    trainable,
)
from ml.models.kinds import get_kind
from ml.models.kinds.base import ModelKind
from ml.models.ranking_holdout import RankingHoldout
from ml.models.recsys.tuning import previous_tuning
from ml.models.refit import for_serving, refit, refit_rows
from ml.models.tenant_candidates import eligible_for_own_model, tenant_candidates
from ml.models.tracking import Training, log_and_register

log = logging.getLogger(__name__)


def sharing_tenants(settings: Settings, kind: ModelKind, region: str) -> list[Tenant]:
    """Tenants whose data may train ``region``'s global model: its pool tenants sharing data that use the kind."""
    return [
        t for t in TenantStore(settings).list() if t.region == region and t.feeds_global_model and t.uses(kind.name)
    ]


def _skipped(kind: ModelKind, tenant_id: str, why: str, version: object = None) -> dict[str, Any]:
    out: dict[str, Any] = {"tenant_id": tenant_id, "kind": kind.name, "skipped": why}
    if version is not None:
        out["version"] = str(version)
    return out


class GlobalData(NamedTuple):
    """What a region's global model learns from and is judged on (:func:`_global_data`)."""

    train: pd.DataFrame  # each tenant's fair share of its training rows
    holdout: pd.DataFrame
    features: list[str]
    catalogue: int  # items of the holdouts' catalogues, summed
    available: int  # training rows before the fair shares
    refit: pd.DataFrame  # the fair shares of the newest labelled cutoffs (ml.models.refit)


def _global_data(
    kind: ModelKind, members: list[tuple[Tenant, snapshots.Snapshot]], policy: TrainSettings
) -> GlobalData:
    """The sharing tenants' rows. Each tenant's training (and refit) rows are its fair share of
    ``global_max_rows`` (whole queries sampled).

    Raises:
        RuntimeError: two tenants' snapshots declare different features (rebuild every warehouse).
    """
    features = feature_names(members[0][1], kind)
    trains, holdouts, refits, catalogue = [], [], [], 0
    for t, snap in members:
        if feature_names(snap, kind) != features:
            raise RuntimeError(
                f"tenant {t.tenant_id}: its snapshot declares other {kind.name} features than "
                f"{members[0][0].tenant_id}; rebuild features for every warehouse first."
            )
        examples = load_examples(snap, kind)
        tr, ho = time_holdout(examples, kind.label_days(snap.windows))
        trains.append(trainable(kind, tr))
        holdouts.append(ho)
        refits.append(trainable(kind, refit_rows(examples, tr, ho)))
        catalogue += catalogue_size(snap, ho) or 0

    def shares(frames: list[pd.DataFrame]) -> pd.DataFrame:
        sizes = {t.tenant_id: len(f) for (t, _), f in zip(members, frames, strict=True)}
        fair = fair_shares(sizes, policy.global_max_rows)
        return pd.concat(
            [
                sample_rows(kind, f, fair[t.tenant_id], f"{snap.snapshot_id}:{kind.name}")
                for (t, snap), f in zip(members, frames, strict=True)
            ],
            ignore_index=True,
        )

    available = sum(len(tr) for tr in trains)
    return GlobalData(
        shares(trains), pd.concat(holdouts, ignore_index=True), features, catalogue, available, shares(refits)
    )


def train_global(
    kind_name: str,
    region: str,
    reason: str = "manual",
    settings: Settings | None = None,
    policy: TrainSettings | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train ``<kind>.global.<region>`` on the region's sharing tenants' latest snapshots, then gate it.

    Returns the outcome of :func:`ml.models.tracking.log_and_register` (``tenant_id`` is the owner
    ``global.<region>``), or ``skipped`` with why.
    """
    settings = settings or get_settings()
    policy = policy or settings.train
    kind = get_kind(kind_name)
    owner = registry.global_owner(region)
    reason, force = _erased(settings, owner, kind, reason, force)
    members = []
    for t in sharing_tenants(settings, kind, region):
        snap = snapshots.latest(settings, t.region, t.tenant_id)
        if snap is not None and snap.rows.get(kind.mart, 0) > 0:
            members.append((t, snap))
    if not members:
        return _skipped(kind, owner, f"no tenant of region {region} that shares data has training data yet")
    data = _global_data(kind, members, policy)
    train, holdout, features, catalogue = data.train, data.holdout, data.features, data.catalogue
    snapshot_id = hashlib.sha256("".join(sorted(s.snapshot_id for _, s in members)).encode()).hexdigest()[:16]
    champ, challenger = champion_and_challenger(kind.name, owner, settings)
    if not force and (same := unchanged(champ, challenger, None, snapshot_id, own_global=True)):
        return _skipped(kind, owner, same, champ.version if champ else None)
    # due, whatever else, when a member's label window grew back past what its champion learnt
    stale = champ is not None and learnt_the_holdout(champ, holdout)
    rules = {"member_rules": member_rules(members)}  # a member's new interaction rule: other labels
    checked = reason == "features" and not (force or stale)
    if checked and (why_not := not_due(champ, members[0][1].manifest_hash, policy, windows=rules)):
        return _skipped(kind, owner, why_not, champ.version)
    if kind.positives(train) < kind.min_train_positives:
        return _skipped(kind, owner, f"{kind.positives(train)} positive examples, need {kind.min_train_positives}")
    t0 = time.perf_counter()
    booster = fit(kind, train, features, policy, num_threads=policy.global_threads)
    cand = Candidate("global", booster, seconds=time.perf_counter() - t0)
    cand.metrics = evaluate(kind, booster, holdout, features, catalogue or None)
    candidates = [cand]  # and the baseline made servable, which the global classifier must beat beyond chance
    base = servable_baseline.candidate(kind, train, holdout, features, catalogue or None, policy, "global")
    candidates += [base] if base is not None else []
    choose = partial(servable_baseline.choose, kind, holdout=holdout, features=features, first=champ is None)
    winner, chosen = sanity.choose_servable(choose, candidates, sanity.refusal(kind, None, holdout, features, policy))
    refit(kind, winner, data.refit, train, features, policy, num_threads=policy.global_threads)
    training = Training(
        kind=kind,
        tenant=None,
        region=region,
        winner=winner,
        candidates=candidates,
        features=features,
        snapshot_id=snapshot_id,
        manifest_hash=members[0][1].manifest_hash,
        reason=reason,
        train_rows=len(train),
        holdout=holdout,
        baseline=baseline_metrics(kind, holdout, catalogue or None),
        catalogue=catalogue or None,
        extra_params={
            "training_tenants": ",".join(t.tenant_id for t, _ in members),
            "global_max_rows": policy.global_max_rows,
            "rows_available": data.available,
            "chosen": chosen,
            **rules,
        },
    )
    return _register(training, members, policy, settings)


def _erased(settings: Settings, owner: str, kind: ModelKind, reason: str, force: bool) -> tuple[str, bool]:
    """(reason, force) of a training: ``erasure`` and forced while the model is marked (it learned
    from data erased since, :mod:`ml.core.erasure_marks`), else as asked."""
    return ("erasure", True) if erasure_marks.pending(settings, owner, kind.name) else (reason, force)


def _register(
    training: Training, members: list[tuple[Tenant, snapshots.Snapshot]], policy: TrainSettings, settings: Settings
) -> dict[str, Any]:
    """Log, register and gate the version (:func:`ml.models.tracking.log_and_register`); then close
    its model's erasure marks (:mod:`ml.core.erasure_marks`) and record its lineage: the snapshots
    it learned from (``members``), the version it became (:mod:`ml.core.lineage`)."""
    outcome = log_and_register(training, policy, settings)
    erasure_marks.close(settings, outcome["tenant_id"], outcome["kind"])
    ids = [t.tenant_id for t, _ in members]
    model = lineage.model_dataset(
        settings.mlflow_tracking_uri, outcome["model"], outcome["version"], training.region, ids
    )
    lineage.record([snapshots.lineage_dataset(settings, t.region, t.tenant_id, s) for t, s in members], [model])
    return outcome


def train_tenant(
    kind_name: str,
    tenant_id: str,
    reason: str = "manual",
    settings: Settings | None = None,
    policy: TrainSettings | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train (or assign the global model to) one tenant's ``<kind>.<tenant>``, then gate it.

    The best candidate on the holdout becomes the new version (:func:`ml.models.servable_baseline.choose`,
    :func:`ml.models.ranking.choose`), a learnt one refitted on the newest cutoffs (:mod:`ml.models.refit`).
    Returns the outcome of :func:`ml.models.tracking.log_and_register` plus ``eligibility``, or ``skipped`` with why.
    """
    settings = settings or get_settings()
    policy = policy or settings.train
    kind = get_kind(kind_name)
    tenant = TenantStore(settings).get(tenant_id)
    if not tenant.uses(kind.name):
        return _skipped(kind, tenant_id, f"tenant does not use {kind.name} models")
    reason, force = _erased(settings, tenant_id, kind, reason, force)
    snap = snapshots.latest(settings, tenant.region, tenant_id)
    if snap is None:
        return _skipped(kind, tenant_id, "no training snapshot: run the features DAG or `tenantflow features build`")
    g = registry.global_champion(kind.name, tenant.global_model_region, settings)
    champ, challenger = champion_and_challenger(kind.name, tenant_id, settings)
    if not force and (same := unchanged(champ, challenger, g, snap.snapshot_id)):
        return _skipped(kind, tenant_id, same, champ.version if champ else None)
    window = kind.label_days(snap.windows)  # days after a cutoff the kind's labels count
    windows = {**snap.windows, "label_days": window}
    if reason == "features" and not force:
        young = graduating(champ, snap.history_days, policy)
        if why_not := not_due(champ, snap.manifest_hash, policy, young, windows):
            return _skipped(kind, tenant_id, why_not, champ.version)
    features, history = feature_names(snap, kind), _history(kind, snap)
    # the competition's holdout is the last cutoff whose label window the history covers
    latest = pd.Timestamp(snap.serving_cutoff) - pd.Timedelta(days=window) if snap.serving_cutoff else None
    examples = load_examples(snap, kind)
    train, holdout = time_holdout(examples, window, latest if history is not None else None)
    catalogue = catalogue_size(snap, holdout)
    eligible, why = eligible_for_own_model(kind, snap, train, holdout, policy)
    candidates = tenant_candidates(kind, tenant_id, g, features, train, holdout, catalogue, eligible, policy, settings)
    judged = _ranking_holdout(
        tenant, history, holdout, window, catalogue, snap.serving_cutoff, bool(candidates),
        recent_days=int(windows.get("short_window_days") or ranking_holdout.RECENT_DAYS),
    )  # fmt: skip
    incumbent = version_family(champ) if champ is not None else None
    tuned = previous_tuning([champ, challenger]) if reason != "erasure" else None  # (chosen with the erased data)
    choose = partial(servable_baseline.choose, kind, holdout=holdout, features=features, first=champ is None)
    if judged is not None:
        candidates = ranking.compete(judged, candidates, kind, features, policy.threads, incumbent, tuned)
        choose = partial(ranking.choose_on, judged, incumbent=incumbent, margin=policy.promotion_margin)
    if not candidates:
        return _skipped(kind, tenant_id, _unserved(kind, why))
    refused = sanity.refusal(kind, judged, holdout, features, policy)  # (the gate would refuse: the next best serves)
    winner, chosen = sanity.choose_servable(choose, candidates, refused)  # (every candidate is logged)
    if judged is not None:
        baseline = ranking.strongest_popularity(candidates, judged)
        windows |= _protocol_params(judged) | ranking.tuning_params(judged)  # (after the choice: it may overrule)
    else:
        baseline = baseline_metrics(kind, holdout, catalogue)
    for_serving(kind, winner, g, history, snap.serving_cutoff, (examples, train, holdout), features, policy, settings)
    eligibility = why or "enough history"
    training = Training(
        kind=kind,
        tenant=tenant,
        winner=winner,
        candidates=candidates,
        features=features,
        snapshot_id=snap.snapshot_id,
        manifest_hash=snap.manifest_hash,
        reason=reason,
        train_rows=len(train),
        holdout=holdout,
        baseline=baseline,
        catalogue=catalogue,
        extra_params=_tenant_params(snap, eligible, eligibility, g, chosen, windows),
        ranking=judged,
    )
    return _register(training, [(tenant, snap)], policy, settings) | {"eligibility": eligibility}


def _unserved(kind: ModelKind, why: str) -> str:
    """Why a tenant that may not train its own model (``why``) gets no version at all."""
    own = f" nor a {kind.baseline_name} of its own (one class in its training window)" if kind.baseline_feature else ""
    return f"{why}, and there is no global {kind.name} champion to serve it yet{own}"


def _tenant_params(
    snap: snapshots.Snapshot, eligible: bool, eligibility: str, g: Any, chosen: str, windows: dict[str, Any]
) -> dict[str, Any]:
    """A tenant training's run params beyond the model's own (``history_days``, ``eligible_for_own_model``
    and ``global_judged`` become version tags too: :mod:`ml.models.due` reads them)."""
    return {
        "history_days": snap.history_days,
        "eligible_for_own_model": eligible,
        "eligibility": eligibility,
        # a young tenant's version is the global model or beat it: a new global version is a change
        **({} if eligible else {"global_judged": str(g.version) if g is not None else ""}),
        "chosen": chosen[:6000],  # MLflow's longest param value (mlflow.utils.validation)
        **windows,
    }


def _ranking_holdout(
    tenant: Tenant,
    history: pd.DataFrame | None,
    holdout: pd.DataFrame,
    window: int,
    catalogue: int | None,
    as_of: Any,
    rerankers: bool = False,
    recent_days: int = ranking_holdout.RECENT_DAYS,
) -> RankingHoldout | None:
    """The competition's holdout (:mod:`ml.models.ranking_holdout`'s docstring). Under ``auto`` the random protocol
    over the history before ``as_of`` decides the whole competition when the temporal holdout judges under
    ``MIN_JUDGED_SHARE`` of the users with history, or under ``MIN_JUDGED_USERS`` users and no re-ranker competes;
    else, over the history before the temporal cutoff, it picks the family that competes there (``families_by``),
    which a temporal holdout of ``MIN_JUDGED_USERS`` or more may ``overrule``. Always so under ``holdout_protocol``
    ``random``; never under ``temporal``, nor under ``auto`` for seen-items ``allow`` (the random split holds out
    only items new to a user: repeats score nothing). ``recent_days``: the short window. None without history."""
    if history is None:
        return None
    exclude_seen, chosen = tenant.seen_items == "exclude", tenant.holdout_protocol
    judged = RankingHoldout.build(history, holdout, window, exclude_seen, catalogue, recent_days)
    few = len(judged.users) if judged is not None else 0
    share = judged.judged_share() if judged is not None else None
    # (no temporal holdout at all, as a ten-day tenant's: the re-rankers stand unjudged)
    unrepresentative = share is not None and share < ranking_holdout.MIN_JUDGED_SHARE
    large = judged is not None and few >= ranking_holdout.MIN_JUDGED_USERS and not unrepresentative
    # the random split holds out items new to a user: it cannot credit the repeats an `allow` tenant serves
    wanted = chosen == ranking_holdout.RANDOM or (chosen == ranking_holdout.AUTO and exclude_seen)
    # beside the temporal holdout, the random protocol only picks the family: on the history before that holdout's
    # cutoff, so the pick never saw the pairs it is then judged on
    replaces = chosen == ranking_holdout.RANDOM or unrepresentative or (not rerankers and not large)
    at = judged.cutoff if judged is not None and not replaces else as_of
    rand = None
    if wanted and as_of is not None:
        rand = RankingHoldout.random_split(history, at, exclude_seen, catalogue, recent_days=recent_days)
    if rand is not None and (chosen == ranking_holdout.RANDOM or not replaces or len(rand.users) > few):
        log.info(
            "%s: the temporal holdout judges %d users (%.0f%% of those with history), the random protocol %d%s",
            tenant.tenant_id, few, 100 * (share or 0.0), len(rand.users),
            " (the tenant's choice)" if chosen == ranking_holdout.RANDOM else "",
        )  # fmt: skip
        if replaces:
            rand.temporal, judged = judged, rand
            rand.chosen_by_tenant = chosen == ranking_holdout.RANDOM
        elif judged is not None:
            judged.families_by, judged.overrule = rand, large
    return judged


def _protocol_params(judged: RankingHoldout) -> dict[str, Any]:
    """The run's params of the competition's holdout (``families_protocol``: temporal where it overruled the pick)."""
    temporal = judged.temporal if judged.protocol == ranking_holdout.RANDOM else judged
    chooser = judged.families_by.protocol if judged.families_by is not None else judged.protocol
    params: dict[str, Any] = {
        "holdout_protocol": judged.protocol,
        "holdout_users": len(judged.users),
        "families_protocol": chooser,
    }
    if temporal is not None:
        params["temporal_judged_share"] = round(temporal.judged_share(), 3)
    return params


def _history(kind: ModelKind, snap: snapshots.Snapshot) -> pd.DataFrame | None:
    """The kind's history mart in this snapshot (None: the kind has none, or the snapshot predates it)."""
    if kind.history_mart is None or not snap.table(kind.history_mart[0]).exists():
        return None
    return snap.read(snap.table(kind.history_mart[0]))
