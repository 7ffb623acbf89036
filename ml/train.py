"""Training: the global model, then per-tenant models, each logged to MLflow and gated.

The flow for one model kind (see :mod:`ml.kinds`):

1. **Global.** Trained on the training cutoffs of the tenants with ``share_data = yes`` (never a
   silo: the registry refuses silo + share). Registered as ``<kind>.global``.
2. **Per tenant.** A tenant with too little history (``TENANTFLOW_MIN_HISTORY_DAYS``, and the
   kind's minimum labelled examples) is served by the global champion: its registered model
   gets a version pointing at the global model's files, tagged ``trained_on=global``. Otherwise
   two candidates are trained on the tenant's own snapshot, one continued from the global model
   (LightGBM ``init_model``: parameters travel to the tenant, its data never travels back) and
   one from scratch; the global model competes too, and whichever is best on the tenant's
   time-based holdout (its last labelled cutoff) becomes the new version.
3. **Gate.** The new version is ``challenger``. It becomes ``champion`` only if it passes the
   sanity checks (finite, non-constant predictions; scoring latency within budget; same input
   schema as the champion) and beats the champion, re-scored on the same holdout, by the
   promotion margin. The decision and its reason are tags on the version and a row in the audit
   log.

Every run is deterministic for a snapshot and seed (``deterministic``, ``force_row_wise``, a
fixed thread count), so retraining on the same snapshot reproduces the same predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import registry, snapshots
from ml.kinds import ModelKind, get_kind
from ml.settings import REPO_ROOT, Settings, get_settings
from ml.tenants import Tenant, TenantRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPolicy:
    """The knobs of training and promotion, from the environment (documented in the README)."""

    min_history_days: int = 30
    promotion_margin: float = 0.002  # absolute, on the kind's headline metric
    latency_budget_ms: float = 10.0  # to score one request's candidates (p50 of 30 tries)
    fairness_tolerance: float = 0.8  # flag a tenant below this fraction of the median tenant
    # LightGBM threads. Tenant models are small and two train at once (two mapped tasks on two
    # cores): more threads than cores makes OpenMP's spinning barriers crawl (measured: a
    # 40k-row fit went from ~1 s to minutes). The global model trains alone on more data.
    num_threads: int = 1
    global_threads: int = 2
    # The global model's training rows, shared evenly between the sharing tenants (a small
    # tenant keeps all its rows; the big ones share the rest), whole ranking queries sampled:
    # bounds its cost as the fleet grows, and keeps big tenants from drowning the small ones.
    global_max_rows: int = 1_000_000
    # A run started by new features (reason "features") retrains only what is due: tenants without
    # a champion, a champion older than this, a changed dbt project, or a tenant graduating from
    # the global model. Drifted tenants are the monitor's call (reason "drift", forced).
    retrain_every_days: float = 7.0

    @classmethod
    def from_env(cls) -> TrainingPolicy:
        e = os.environ
        return cls(
            min_history_days=int(e.get("TENANTFLOW_MIN_HISTORY_DAYS", cls.min_history_days)),
            promotion_margin=float(e.get("TENANTFLOW_PROMOTION_MARGIN", cls.promotion_margin)),
            latency_budget_ms=float(e.get("TENANTFLOW_LATENCY_BUDGET_MS", cls.latency_budget_ms)),
            fairness_tolerance=float(e.get("TENANTFLOW_FAIRNESS_TOLERANCE", cls.fairness_tolerance)),
            num_threads=int(e.get("TENANTFLOW_TRAIN_THREADS", cls.num_threads)),
            global_threads=int(e.get("TENANTFLOW_GLOBAL_TRAIN_THREADS", cls.global_threads)),
            global_max_rows=int(e.get("TENANTFLOW_GLOBAL_MAX_ROWS", cls.global_max_rows)),
            retrain_every_days=float(e.get("TENANTFLOW_RETRAIN_EVERY_DAYS", cls.retrain_every_days)),
        )


@dataclass
class Candidate:
    """One trained (or borrowed) model and how it did on the tenant's holdout."""

    trained_on: str
    booster: Any  # lightgbm.Booster
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None  # set when the model already lives in MLflow (the global one)
    global_version: str | None = None
    seconds: float = 0.0
    snapshot_id: str | None = None


@cache
def git_commit() -> str:
    env = os.environ.get("TENANTFLOW_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------- data


def feature_names(snap: snapshots.Snapshot, kind: ModelKind) -> list[str]:
    return [f["name"] for f in snap.features[kind.mart]]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based holdout: the last labelled cutoff; training: every earlier one."""
    if frame.empty:
        return frame, frame
    last = frame["cutoff_date"].max()
    return frame[frame["cutoff_date"] < last], frame[frame["cutoff_date"] == last]


def load_examples(snap: snapshots.Snapshot, kind: ModelKind) -> pd.DataFrame:
    return pd.read_parquet(snap.table(kind.mart))


def _trainable(kind: ModelKind, frame: pd.DataFrame) -> pd.DataFrame:
    """Ranking queries without any clicked candidate carry no gradient: leave them out of training."""
    if kind.group is None or frame.empty:
        return frame
    has_pos = frame.groupby(kind.group, sort=False)[kind.label].transform("max").astype(bool)
    return frame[has_pos]


def fair_shares(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split ``budget`` rows evenly between tenants; one with fewer rows than its share keeps
    them all and leaves the rest to the others (water-filling)."""
    out, left = {}, budget
    ordered = sorted(sizes, key=lambda t: (sizes[t], t))
    for i, t in enumerate(ordered):
        out[t] = min(sizes[t], left // (len(ordered) - i))
        left -= out[t]
    return out


def sample_rows(kind: ModelKind, frame: pd.DataFrame, rows: int, seed_key: str) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, whole queries for ranking, the same for the same data
    (seeded by ``seed_key``), in their original order."""
    if len(frame) <= rows:
        return frame
    rng = np.random.default_rng(zlib.crc32(seed_key.encode()))
    if kind.group is None:
        return frame.iloc[np.sort(rng.choice(len(frame), size=rows, replace=False))]
    sizes = frame.groupby(kind.group, sort=True).size()
    picked = sizes.index.to_numpy()[rng.permutation(len(sizes))]
    fits = np.cumsum(sizes.loc[picked].to_numpy()) <= rows
    return frame[frame[kind.group].isin(picked[fits])]


def fit(kind: ModelKind, frame: pd.DataFrame, features: list[str], policy: TrainingPolicy, init_model=None,
        num_threads: int | None = None):  # fmt: skip
    """One LightGBM model on ``frame`` (continued from ``init_model`` when given)."""
    import lightgbm as lgb

    frame = _trainable(kind, frame)
    params = {**kind.params, "num_threads": num_threads or policy.num_threads}
    rounds = kind.num_boost_round
    if init_model is not None:
        params["learning_rate"] = params["learning_rate"] * 0.6
        rounds = kind.fine_tune_rounds
    group = frame.groupby(kind.group, sort=False).size().to_numpy() if kind.group else None
    data = lgb.Dataset(kind.matrix(frame, features), label=frame[kind.label].astype(int).to_numpy(), group=group,
                       feature_name=features, free_raw_data=True, params={"max_bin": params["max_bin"]})  # fmt: skip
    return lgb.train(params, data, num_boost_round=rounds, init_model=init_model)


def predict(kind: ModelKind, booster, frame: pd.DataFrame, features: list[str], num_threads: int = 1) -> np.ndarray:
    return booster.predict(kind.matrix(frame, features), num_threads=num_threads)


def evaluate(kind: ModelKind, booster, holdout: pd.DataFrame, features: list[str], catalogue: int | None) -> dict[str, float]:
    if holdout.empty:
        return {}
    return kind.metrics(holdout, predict(kind, booster, holdout, features), catalogue)


def _catalogue(snap: snapshots.Snapshot, holdout: pd.DataFrame) -> int | None:
    if holdout.empty:
        return None
    return snap.catalogue_items.get(str(pd.Timestamp(holdout["cutoff_date"].iloc[0]).date()))


# ---------------------------------------------------------------- gate


def sanity_problems(kind: ModelKind, booster, holdout: pd.DataFrame, features: list[str], policy: TrainingPolicy,
                    champion_features: list[str] | None) -> list[str]:  # fmt: skip
    """Reasons a model must not serve, whatever its metrics (empty when it may)."""
    problems = []
    if champion_features is not None and champion_features != features:
        added = sorted(set(features) - set(champion_features))
        removed = sorted(set(champion_features) - set(features))
        problems.append(f"input schema changed (added {added}, removed {removed}); promote by hand once clients are ready")
    if holdout.empty:
        return problems
    p = predict(kind, booster, holdout, features)
    if not np.all(np.isfinite(p)):
        problems.append(f"{int((~np.isfinite(p)).sum())} non-finite predictions on the holdout")
    elif float(np.std(p)) < 1e-9:
        problems.append("constant predictions on the holdout")
    ms = request_latency_ms(kind, booster, holdout, features)
    if ms > policy.latency_budget_ms:
        problems.append(f"scoring one request takes {ms:.2f} ms, over the {policy.latency_budget_ms} ms budget")
    return problems


def request_latency_ms(kind: ModelKind, booster, holdout: pd.DataFrame, features: list[str], tries: int = 30) -> float:
    """Median time to score one request's rows (one query's candidates, or 100 users for churn)."""
    if kind.group:
        first_q = holdout[kind.group].iloc[0]
        rows = kind.matrix(holdout[holdout[kind.group] == first_q], features)
    else:
        rows = kind.matrix(holdout.head(100), features)
    times = []
    for _ in range(tries):
        t = time.perf_counter()
        booster.predict(rows, num_threads=1)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


@dataclass
class GateDecision:
    promote: bool
    reason: str
    champion_version: str | None
    champion_metrics: dict[str, float]


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
        return None if new < old else m  # (a NaN baseline, as before, does not block)
    return None


def gate(kind: ModelKind, name: str, challenger: Candidate, holdout: pd.DataFrame, features: list[str],
         catalogue: int | None, baseline: dict[str, float], policy: TrainingPolicy, settings: Settings) -> GateDecision:  # fmt: skip
    """Decide whether the challenger replaces the champion (see the module docstring)."""
    champ = registry.version_by_alias(name, registry.CHAMPION, settings)
    champ_features = json.loads(champ.tags["features"]) if champ is not None and "features" in champ.tags else None
    problems = sanity_problems(kind, challenger.booster, holdout, features, policy, champ_features)
    if problems:
        return GateDecision(False, "; ".join(problems), str(champ.version) if champ else None, {})
    h = kind.headline
    new = challenger.metrics.get(h)
    if champ is None:
        if new is None:
            return GateDecision(True, "first champion (no holdout yet: too little labelled history)", None, {})
        if baseline.get(h) is not None:
            decided_by = beats_baseline(kind, challenger.metrics, baseline)
            if decided_by is None:
                return GateDecision(False, f"{h} {new:.4f} does not beat the {kind.baseline_name} baseline "
                                           f"({baseline[h]:.4f})", None, {})  # fmt: skip
            if decided_by != h:
                m = decided_by
                return GateDecision(True, f"first champion: {h} {new:.4f} ties the {kind.baseline_name} baseline; "
                                          f"{m} {challenger.metrics[m]:.4f} vs {baseline[m]:.4f}", None, {})  # fmt: skip
        return GateDecision(True, f"first champion: {h} {new:.4f} vs {kind.baseline_name} baseline "
                                  f"{baseline.get(h, float('nan')):.4f}", None, {})  # fmt: skip
    if champ.tags.get("snapshot_id") == challenger.snapshot_id and champ.tags.get("trained_on") == challenger.trained_on \
            and champ.tags.get("global_version") == (challenger.global_version or ""):
        return GateDecision(False, f"same data, same recipe as champion v{str(champ.version)}", str(champ.version), {})
    champ_booster = load_booster(name, str(champ.version), settings)
    champ_metrics = evaluate(kind, champ_booster, holdout, features, catalogue)
    old = champ_metrics.get(h)
    if new is None or old is None:
        # no holdout for this tenant: follow the global champion when that is what it serves
        if challenger.trained_on == "global" and champ.tags.get("trained_on") == "global":
            return GateDecision(True, f"global champion moved to v{challenger.global_version}", str(champ.version), {})
        return GateDecision(False, f"no holdout to compare with champion v{str(champ.version)}", str(champ.version), champ_metrics)
    if new >= old + policy.promotion_margin:
        return GateDecision(True, f"{h} {new:.4f} beats champion v{str(champ.version)} ({old:.4f}) by "
                                  f"{new - old:+.4f} >= margin {policy.promotion_margin}", str(champ.version), champ_metrics)  # fmt: skip
    return GateDecision(False, f"{h} {new:.4f} does not beat champion v{str(champ.version)} ({old:.4f}) by the margin "
                               f"{policy.promotion_margin}", str(champ.version), champ_metrics)  # fmt: skip


def load_booster(name: str, version: str, settings: Settings):
    """A registered version's LightGBM booster (cached: versions are immutable)."""
    registry.client(settings)
    return _load_booster(settings.mlflow_tracking_uri, name, str(version))


@lru_cache(maxsize=32)
def _load_booster(uri: str, name: str, version: str):
    import mlflow.lightgbm

    return mlflow.lightgbm.load_model(f"models:/{name}/{version}")


# ---------------------------------------------------------------- MLflow


def _input_example(kind: ModelKind, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Column medians, not a real user's row: artifacts must not carry a tenant's raw data."""
    x = kind.matrix(frame.head(50_000), features)
    return x.median().to_frame().T.astype(np.float32)


def log_and_register(kind: ModelKind, tenant: Tenant | None, winner: Candidate, *, features: list[str], snapshot_id: str,
                     manifest_hash: str, reason: str, train_rows: int, holdout: pd.DataFrame, baseline: dict[str, float],
                     candidates: list[Candidate], extra_params: dict, catalogue: int | None,
                     policy: TrainingPolicy, settings: Settings) -> dict:  # fmt: skip
    """Log one run (params, metrics, plots, model) and register it as a new version, then gate it."""
    import mlflow
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    from ml import evaluate as ev

    tenant_id = tenant.tenant_id if tenant else registry.GLOBAL
    name = registry.model_name(kind.name, tenant_id)
    registry.ensure_model(name, tenant_id, kind.name, settings)
    exp = registry.experiment_id(kind.name, settings)
    tags = {
        "tenant_id": tenant_id,
        "region": tenant.region if tenant else "all",
        "isolation": tenant.isolation if tenant else "-",
        "kind": kind.name,
        "reason": reason,
        "trained_on": winner.trained_on,
        "snapshot_id": snapshot_id,
        "manifest_hash": manifest_hash,
        "git_commit": git_commit(),
        "global_version": winner.global_version or "",
        "actor": registry.actor(),
    }
    if "eligible_for_own_model" in extra_params:  # a global-served tenant without it graduates later
        tags["eligible_for_own_model"] = str(bool(extra_params["eligible_for_own_model"])).lower()
    started = time.perf_counter()
    with mlflow.start_run(experiment_id=exp, run_name=f"{tenant_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}",
                          tags=tags) as run:  # fmt: skip
        mlflow.log_params({
            **{f"lgb.{k}": v for k, v in kind.params.items() if k not in ("verbosity",)},
            "num_boost_round": kind.num_boost_round,
            "fine_tune_rounds": kind.fine_tune_rounds,
            "features": len(features),
            "min_history_days": policy.min_history_days,
            "promotion_margin": policy.promotion_margin,
            **extra_params,
        })  # fmt: skip
        metrics = {**winner.metrics}
        metrics.update({f"baseline_{k}": v for k, v in baseline.items()})
        metrics.update(ev.lift(winner.metrics, baseline, kind.lift_metrics))
        metrics.update({f"candidate.{c.trained_on}.{kind.headline}": c.metrics[kind.headline] for c in candidates
                        if kind.headline in c.metrics})  # fmt: skip
        metrics.update(rows_train=float(train_rows), rows_holdout=float(len(holdout)),
                       train_seconds=sum(c.seconds for c in candidates))  # fmt: skip
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            _log_explanations(kind, winner.booster, holdout, features, d, tenant_id)
            if not holdout.empty:
                if kind.group:
                    ev.plot_ranking_comparison(winner.metrics, baseline, d / "holdout_vs_popularity.png",
                                               f"{kind.name} · {tenant_id} · holdout")  # fmt: skip
                else:
                    p = predict(kind, winner.booster, holdout, features)
                    ev.plot_calibration(holdout[kind.label].to_numpy(), p, d / "calibration.png",
                                        f"churn · {tenant_id} · holdout")  # fmt: skip
            (d / "lineage.json").write_text(json.dumps({
                "snapshot_id": snapshot_id, "manifest_hash": manifest_hash, "git_commit": git_commit(),
                "features": features, "rows_train": train_rows, "rows_holdout": len(holdout),
                "holdout_cutoff": str(holdout["cutoff_date"].iloc[0]) if not holdout.empty else None,
                "candidates": {c.trained_on: c.metrics for c in candidates},
            }, indent=1, default=str))  # fmt: skip
            mlflow.log_artifacts(str(d))
        example = None if holdout.empty else _input_example(kind, holdout, features)
        if winner.model_uri is not None:
            model_uri = winner.model_uri  # the global model's own files: one copy, many registered names
        else:
            sig = infer_signature(example, predict(kind, winner.booster, example, features)) if example is not None else None
            info = mlflow.lightgbm.log_model(winner.booster, name="model", signature=sig, input_example=example,
                                             pip_requirements=_pip_requirements())  # fmt: skip
            model_uri = info.model_uri
        version_tags = {k: v for k, v in tags.items() if k != "actor"} | {"features": json.dumps(features)}
        mv = mlflow.register_model(model_uri, name, tags=version_tags)
        c = registry.client(settings)
        # register_model links the version to the run that logged the files; point it at this run
        run_id = run.info.run_id
    winner.snapshot_id = snapshot_id
    decision = gate(kind, name, winner, holdout, features, catalogue, baseline, policy, settings)
    c.set_model_version_tag(name, str(mv.version), "run_id", run_id)
    if decision.champion_version:  # its champion.* metrics are that version re-scored on this holdout
        c.set_tag(run_id, "gate.champion_version", decision.champion_version)
    if decision.promote:
        registry.promote(kind.name, tenant_id, str(mv.version), decision.reason, settings)
    else:
        c.set_registered_model_alias(name, registry.CHALLENGER, str(mv.version))
        c.set_model_version_tag(name, str(mv.version), "gate.decision", "refused")
        c.set_model_version_tag(name, str(mv.version), "gate.reason", decision.reason[:4000])
        registry.audit(kind.name, tenant_id, "refuse", decision.champion_version, str(mv.version), decision.reason, settings)
    c.set_tag(run_id, "gate.decision", "promoted" if decision.promote else "refused")
    c.set_tag(run_id, "gate.reason", decision.reason[:4000])
    for k, v in decision.champion_metrics.items():
        c.log_metric(run_id, f"champion.{k}", float(v))
    log.info("%s v%s (%s): %s — %s", name, str(mv.version), winner.trained_on,
             "promoted" if decision.promote else "challenger", decision.reason)  # fmt: skip
    return {
        "tenant_id": tenant_id,
        "kind": kind.name,
        "model": name,
        "version": str(mv.version),
        "run_id": run_id,
        "model_uri": model_uri,
        "trained_on": winner.trained_on,
        "promoted": decision.promote,
        "reason": decision.reason,
        "metrics": winner.metrics,
        "baseline_metrics": baseline,
        "snapshot_id": snapshot_id,
        "log_seconds": round(time.perf_counter() - started, 2),
    }


@cache
def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"lightgbm=={version('lightgbm')}", f"numpy=={version('numpy')}", f"pandas=={version('pandas')}"]


def _log_explanations(kind: ModelKind, booster, holdout: pd.DataFrame, features: list[str], d: Path, tenant_id: str) -> None:
    """Importance (gain, split) and LightGBM's own SHAP contributions on a holdout sample."""
    import mlflow

    from ml import evaluate as ev

    gain = booster.feature_importance("gain")
    split_ = booster.feature_importance("split")
    if holdout.empty:
        contrib = np.zeros(len(features))
    else:
        sample = holdout.sample(min(len(holdout), 200), random_state=0)  # a mean |contribution| per feature
        contrib = np.abs(booster.predict(kind.matrix(sample, features), pred_contrib=True, num_threads=1)[:, :-1]).mean(axis=0)
    table = pd.DataFrame({"feature": features, "gain": gain, "split": split_, "mean_abs_shap": contrib})
    table.sort_values("gain", ascending=False).to_csv(d / "feature_importance.csv", index=False)
    ev.plot_importance(features, gain, contrib, d / "feature_importance.png", f"{kind.name} · {tenant_id}")
    mlflow.log_metrics({f"shap.{f}": float(v) for f, v in zip(features, contrib, strict=True)})


# ---------------------------------------------------------------- training entry points


def sharing_tenants(settings: Settings, kind: ModelKind) -> list[Tenant]:
    return [t for t in TenantRegistry(settings).list() if t.share_data and t.isolation == "pool" and kind.name in t.model_kinds]


def train_global(kind_name: str, reason: str = "manual", settings: Settings | None = None,
                 policy: TrainingPolicy | None = None, force: bool = False) -> dict:  # fmt: skip
    """Train ``<kind>.global`` on the sharing tenants' latest snapshots."""
    settings = settings or get_settings()
    policy = policy or TrainingPolicy.from_env()
    kind = get_kind(kind_name)
    members = []
    for t in sharing_tenants(settings, kind):
        snap = snapshots.latest(settings, t.region, t.tenant_id)
        if snap is not None and snap.rows.get(kind.mart, 0) > 0:
            members.append((t, snap))
    if not members:
        return {"tenant_id": registry.GLOBAL, "kind": kind.name, "skipped": "no sharing tenant has training data yet"}
    features = feature_names(members[0][1], kind)
    trains, holdouts, catalogue = [], [], 0
    for t, snap in members:
        if feature_names(snap, kind) != features:
            raise RuntimeError(f"tenant {t.tenant_id}: its snapshot declares other {kind.name} features than "
                               f"{members[0][0].tenant_id}; rebuild features for every warehouse first.")  # fmt: skip
        tr, ho = split(load_examples(snap, kind))
        trains.append(_trainable(kind, tr))
        holdouts.append(ho)
        catalogue += _catalogue(snap, ho) or 0
    available = sum(len(tr) for tr in trains)
    shares = fair_shares({t.tenant_id: len(tr) for (t, _), tr in zip(members, trains, strict=True)}, policy.global_max_rows)
    trains = [sample_rows(kind, tr, shares[t.tenant_id], f"{snap.snapshot_id}:{kind.name}")
              for (t, snap), tr in zip(members, trains, strict=True)]  # fmt: skip
    train = pd.concat(trains, ignore_index=True)
    holdout = pd.concat(holdouts, ignore_index=True)
    snapshot_id = hashlib.sha256("".join(sorted(s.snapshot_id for _, s in members)).encode()).hexdigest()[:16]
    champ = registry.version_by_alias(registry.model_name(kind.name, registry.GLOBAL), registry.CHAMPION, settings)
    if not force and champ is not None and champ.tags.get("snapshot_id") == snapshot_id:
        return {"tenant_id": registry.GLOBAL, "kind": kind.name, "skipped": f"unchanged snapshot {snapshot_id}",
                "version": str(champ.version)}  # fmt: skip
    why_not = not_due(champ, members[0][1].manifest_hash, policy) if reason == "features" and not force else None
    if why_not:
        return {"tenant_id": registry.GLOBAL, "kind": kind.name, "skipped": why_not, "version": str(champ.version)}
    if kind.positives(train) < kind.min_train_positives:
        return {"tenant_id": registry.GLOBAL, "kind": kind.name,
                "skipped": f"{kind.positives(train)} positive examples, need {kind.min_train_positives}"}  # fmt: skip
    t0 = time.perf_counter()
    booster = fit(kind, train, features, policy, num_threads=policy.global_threads)
    cand = Candidate("global", booster, seconds=time.perf_counter() - t0)
    cand.metrics = evaluate(kind, booster, holdout, features, catalogue or None)
    baseline = kind.metrics(holdout, kind.baseline(holdout), catalogue or None) if not holdout.empty else {}
    return log_and_register(
        kind, None, cand, features=features, snapshot_id=snapshot_id, manifest_hash=members[0][1].manifest_hash,
        reason=reason, train_rows=len(train), holdout=holdout, baseline=baseline, candidates=[cand],
        extra_params={"training_tenants": ",".join(t.tenant_id for t, _ in members), "global_max_rows": policy.global_max_rows,
                      "rows_available": available}, catalogue=catalogue or None,
        policy=policy, settings=settings,
    )


def not_due(champ, manifest_hash: str, policy: TrainingPolicy, graduating: bool = False) -> str | None:
    """Why a feature-triggered run leaves this champion alone, or None when it is due."""
    if champ is None or graduating or champ.tags.get("manifest_hash") != manifest_hash:
        return None
    age_days = (time.time() - champ.creation_timestamp / 1000) / 86_400
    if age_days >= policy.retrain_every_days:
        return None
    return (f"not due: champion v{champ.version} is {age_days:.1f} days old (retrain every {policy.retrain_every_days:g} "
            f"days; drift retrains come from the monitor)")  # fmt: skip


def graduating(champ, history_days: int, policy: TrainingPolicy) -> bool:
    """Served by the global model because the tenant was too young (not because the global model
    won on its holdout), and now old enough to try a model of its own."""
    return (champ is not None and champ.tags.get("trained_on") == "global"
            and champ.tags.get("eligible_for_own_model", "false") == "false"
            and history_days >= policy.min_history_days)  # fmt: skip


def train_tenant(kind_name: str, tenant_id: str, reason: str = "manual", settings: Settings | None = None,
                 policy: TrainingPolicy | None = None, force: bool = False) -> dict:  # fmt: skip
    """Train (or assign the global model to) one tenant's ``<kind>.<tenant>``, then gate it."""
    settings = settings or get_settings()
    policy = policy or TrainingPolicy.from_env()
    kind = get_kind(kind_name)
    tenant = TenantRegistry(settings).get(tenant_id)
    if kind.name not in tenant.model_kinds:
        return {"tenant_id": tenant_id, "kind": kind.name, "skipped": f"tenant does not use {kind.name} models"}
    snap = snapshots.latest(settings, tenant.region, tenant_id)
    if snap is None:
        return {"tenant_id": tenant_id, "kind": kind.name, "skipped": "no training snapshot: run the features DAG first"}
    name = registry.model_name(kind.name, tenant_id)
    global_name = registry.model_name(kind.name, registry.GLOBAL)
    g = registry.version_by_alias(global_name, registry.CHAMPION, settings)
    champ = registry.version_by_alias(name, registry.CHAMPION, settings)
    if (not force and champ is not None and champ.tags.get("snapshot_id") == snap.snapshot_id
            and (champ.tags.get("trained_on") != "global" or (g is not None and champ.tags.get("global_version") == str(g.version)))):
        return {"tenant_id": tenant_id, "kind": kind.name, "skipped": f"unchanged snapshot {snap.snapshot_id}",
                "version": str(champ.version)}  # fmt: skip
    why_not = not_due(champ, snap.manifest_hash, policy, graduating(champ, snap.history_days, policy)) \
        if reason == "features" and not force else None  # fmt: skip
    if why_not:
        return {"tenant_id": tenant_id, "kind": kind.name, "skipped": why_not, "version": str(champ.version)}
    features = feature_names(snap, kind)
    examples = load_examples(snap, kind)
    train, holdout = split(examples)
    catalogue = _catalogue(snap, holdout)
    baseline = kind.metrics(holdout, kind.baseline(holdout), catalogue) if not holdout.empty else {}
    candidates: list[Candidate] = []
    global_booster = None
    if g is not None:
        g_features = json.loads(g.tags.get("features", "[]"))
        if g_features == features:
            global_booster = load_booster(global_name, str(g.version), settings)
            c = Candidate("global", global_booster, model_uri=g.source, global_version=str(g.version))
            c.metrics = evaluate(kind, global_booster, holdout, features, catalogue)
            candidates.append(c)
        else:
            log.warning("tenant %s: global %s v%s has other features; not used", tenant_id, kind.name, str(g.version))
    eligible, why = _eligible(kind, snap, train, holdout, policy)
    if eligible:
        for trained_on, init in (("fine_tuned", global_booster), ("tenant", None)):
            if trained_on == "fine_tuned" and init is None:
                continue
            t0 = time.perf_counter()
            booster = fit(kind, train, features, policy, init_model=init)
            c = Candidate(trained_on, booster, seconds=time.perf_counter() - t0,
                          global_version=str(g.version) if trained_on == "fine_tuned" and g else None)  # fmt: skip
            c.metrics = evaluate(kind, booster, holdout, features, catalogue)
            candidates.append(c)
    if not candidates:
        return {"tenant_id": tenant_id, "kind": kind.name,
                "skipped": f"{why}, and there is no global {kind.name} champion to serve it yet"}  # fmt: skip
    # not eligible: the global model is the only candidate
    h = kind.headline
    winner = max(candidates, key=lambda c: (c.metrics.get(h, float("-inf")), c.trained_on != "global"))
    result = log_and_register(
        kind, tenant, winner, features=features, snapshot_id=snap.snapshot_id, manifest_hash=snap.manifest_hash,
        reason=reason, train_rows=len(train), holdout=holdout, baseline=baseline, candidates=candidates,
        extra_params={"history_days": snap.history_days, "eligible_for_own_model": eligible,
                      "eligibility": why or "enough history"},
        catalogue=catalogue, policy=policy, settings=settings,
    )  # fmt: skip
    result["eligibility"] = why or "enough history"
    return result


def _eligible(kind: ModelKind, snap: snapshots.Snapshot, train: pd.DataFrame, holdout: pd.DataFrame,
              policy: TrainingPolicy) -> tuple[bool, str]:  # fmt: skip
    if snap.history_days < policy.min_history_days:
        return False, f"{snap.history_days} days of history (< {policy.min_history_days})"
    if kind.positives(train) < kind.min_train_positives:
        return False, f"{kind.positives(train)} labelled positives to train on (< {kind.min_train_positives})"
    if kind.positives(holdout) < kind.min_holdout_positives:
        return False, f"{kind.positives(holdout)} labelled positives in the holdout (< {kind.min_holdout_positives})"
    return True, ""


def plan_run(ctx: dict, parallel_chunks: int = 2) -> dict:
    """What one ``train`` DAG run does, from its params and how it was triggered."""
    from dataclasses import asdict

    from ml.features import tenants_for, warehouses
    from ml.ingest import chunk

    p = ctx["params"]
    kinds = [get_kind(k).name for k in p["kinds"]]
    tenants = tenants_for(None, p["tenants"] or None)
    run_type = str(getattr(ctx.get("dag_run"), "run_type", "manual")).rsplit(".", 1)[-1].lower()
    reason = p.get("reason") or {"asset_triggered": "features", "scheduled": "schedule"}.get(run_type, run_type)
    ids = [t.tenant_id for t in tenants]
    size = max(1, min(int(p.get("chunk_size") or 10), -(-len(ids) // parallel_chunks)))
    common = {"kinds": kinds, "reason": reason, "force": bool(p.get("force"))}
    return {
        "warehouses": [asdict(w) | {"only": ids if p["tenants"] else None} for w in warehouses(tenants)],
        "globals": [] if p["tenants"] else [{"kind": k, **common} for k in kinds],
        "chunks": [{"tenants": c, **common} for c in chunk(ids, size)],
    }


def fairness(results: list[dict], settings: Settings | None = None, policy: TrainingPolicy | None = None) -> list[dict]:
    """Each tenant's headline metric against the median tenant's, logged on its run and flagged when far below."""
    settings = settings or get_settings()
    policy = policy or TrainingPolicy.from_env()
    out = []
    c = registry.client(settings)
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        if r.get("run_id") and r["tenant_id"] != registry.GLOBAL:
            by_kind.setdefault(r["kind"], []).append(r)
    for kind_name, rs in by_kind.items():
        h = get_kind(kind_name).headline
        values = [r["metrics"][h] for r in rs if h in r.get("metrics", {})]
        if not values:
            continue
        median = float(np.median(values))
        for r in rs:
            v = r["metrics"].get(h)
            if v is None:
                continue
            ratio = v / median if median else float("nan")
            flagged = bool(ratio < policy.fairness_tolerance)
            c.log_metric(r["run_id"], f"{h}_vs_median", ratio)
            c.set_tag(r["run_id"], "fairness.flag", "below_median" if flagged else "ok")
            out.append({"tenant_id": r["tenant_id"], "kind": kind_name, "metric": h, "value": v,
                        "median": median, "ratio": ratio, "flagged": flagged})  # fmt: skip
    return out
