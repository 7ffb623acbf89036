"""Logging a training to MLflow: one run per tenant and kind, then a registered version, then the gate.

Every run has the same metric names for every tenant (``baseline_*``, ``*_lift``,
``candidate.<trained_on>.<metric>``), params, feature importance and SHAP summary (LightGBM's own
contributions), the kind's holdout plots, ``lineage.json``, a signature and an input example made
of column medians (no tenant's raw row leaves its store).
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core import sealed_files
from ml.core.settings import REPO_ROOT, Settings, TrainSettings, get_settings
from ml.core.tenants import Tenant
from ml.models import evaluate, plots, registry
from ml.models.audit import actor
from ml.models.champion import JUDGED_ARTIFACT, LEARNT_UNTIL, learnt_until
from ml.models.due import WINDOW_TAGS
from ml.models.fit import LIGHTGBM, Candidate, predict
from ml.models.gate import GateDecision, gate, record_decision
from ml.models.kinds.base import ModelKind
from ml.models.recsys.tuning import TAG as TUNING_TAG

log = logging.getLogger(__name__)


@cache
def git_commit() -> str:
    """The code's commit (``TENANTFLOW_GIT_COMMIT``, else ``git rev-parse HEAD``, ``-dirty`` if changed)."""
    configured = get_settings().git_commit
    if configured:
        return configured
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _input_example(kind: ModelKind, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Column medians, not a real user's row: artifacts must not carry a tenant's raw data."""
    x = kind.matrix(frame.head(50_000), features)
    return x.median().to_frame().T.astype(np.float32)


@dataclass
class Training:
    """Everything one training logs: the winner, the candidates it beat, and what they learned from."""

    kind: ModelKind
    tenant: Tenant | None  # None: the global model
    winner: Candidate
    candidates: list[Candidate]
    features: list[str]
    snapshot_id: str
    manifest_hash: str
    reason: str
    train_rows: int
    holdout: pd.DataFrame
    baseline: dict[str, float]  # the kind's baseline on the same holdout
    catalogue: int | None
    extra_params: dict[str, Any] = field(default_factory=dict)
    ranking: Any = None  # ml.models.ranking.RankingHoldout: the recommender's competition holdout
    region: str = ""  # the global model's region (a tenant's model: its tenant's region)

    def __post_init__(self) -> None:
        if self.tenant is not None:
            self.region = self.tenant.region
        elif not self.region:
            raise ValueError("a global model's training names its region")

    @property
    def tenant_id(self) -> str:
        """The model's owner: the tenant, or ``global.<region>``."""
        return self.tenant.tenant_id if self.tenant else registry.global_owner(self.region)

    @property
    def global_model(self) -> str:
        """The registered global model the winner is or started from (``""``: it learned from the tenant alone)."""
        if self.tenant is None or not self.winner.global_version:
            return ""
        return registry.model_name(self.kind.name, registry.global_owner(self.tenant.global_model_region))


def _run_tags(t: Training) -> dict[str, str]:
    tags = {
        "tenant_id": t.tenant_id,
        "region": t.region,
        "isolation": t.tenant.isolation if t.tenant else "-",
        "kind": t.kind.name,
        "reason": t.reason,
        "trained_on": t.winner.trained_on,
        "family": t.winner.family,
        "snapshot_id": t.snapshot_id,
        "manifest_hash": t.manifest_hash,
        "git_commit": git_commit(),
        "global_version": t.winner.global_version or "",
        "global_model": t.global_model,
        "actor": actor(),
    }
    if t.winner.served is not None or t.winner.judged_model:  # refitted for serving: ml.models.refit
        tags["judged_model"] = JUDGED_ARTIFACT
    if t.winner.refit_cutoffs:
        tags["refit_cutoffs"] = t.winner.refit_cutoffs
    # a young tenant's version: whether it may train its own, its age, the global version it met; the
    # feature windows its inputs were counted over (ml.models.due)
    for tag in ("eligible_for_own_model", "history_days", "global_judged", *WINDOW_TAGS, TUNING_TAG):
        if tag in t.extra_params:
            value = t.extra_params[tag]
            tags[tag] = str(value).lower() if isinstance(value, bool) else str(value)
    return tags


def _run_params(t: Training, policy: TrainSettings) -> dict[str, Any]:
    return {
        **{f"lgb.{k}": v for k, v in t.kind.params.items() if k not in ("verbosity",)},
        "num_boost_round": t.kind.num_boost_round,
        "fine_tune_rounds": t.kind.fine_tune_rounds,
        "features": len(t.features),
        "min_history_days": policy.min_history_days,
        "promotion_margin": policy.promotion_margin,
        **t.extra_params,
    }


def _run_metrics(t: Training) -> dict[str, float]:
    kind, h = t.kind, t.kind.headline
    metrics = {**t.winner.metrics}
    metrics.update({f"baseline_{k}": v for k, v in t.baseline.items()})
    metrics.update(evaluate.lift(t.winner.metrics, t.baseline, kind.lift_metrics, kind.lower_is_better))
    metrics.update({f"candidate.{c.label}.{h}": c.metrics[h] for c in t.candidates if h in c.metrics})
    metrics.update(
        rows_train=float(t.train_rows),
        rows_holdout=float(len(t.holdout)),
        train_seconds=sum(c.seconds for c in t.candidates),
    )
    if t.winner.refit_rows:  # refitted for serving here (ml.models.refit)
        metrics["rows_refit"] = float(t.winner.refit_rows)
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _lineage(t: Training) -> dict[str, Any]:
    return {
        "snapshot_id": t.snapshot_id,
        "manifest_hash": t.manifest_hash,
        "git_commit": git_commit(),
        "features": t.features,
        "rows_train": t.train_rows,
        "rows_holdout": len(t.holdout),
        "holdout_cutoff": str(t.holdout["cutoff_date"].iloc[0]) if not t.holdout.empty else None,
        "refit_cutoffs": t.winner.refit_cutoffs or None,  # what the served booster learned from
        "candidates": {c.label: c.metrics for c in t.candidates},
    }


def _log_artifacts(t: Training) -> None:
    import mlflow

    kind, winner, holdout = t.kind, t.winner, t.holdout
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if winner.booster is not None:  # the served booster's (ml.models.refit)
            _log_explanations(kind, winner.served or winner.booster, holdout, t.features, d, t.tenant_id)
        if not holdout.empty:
            title = f"{kind.name} · {t.tenant_id} · holdout"
            if "ranking_comparison" in kind.plots:
                plots.plot_ranking_comparison(winner.metrics, t.baseline, d / "holdout_vs_popularity.png", title)
            if "calibration" in kind.plots and winner.booster is not None:
                p = predict(kind, winner.booster, holdout, t.features)
                plots.plot_calibration(holdout[kind.label].to_numpy(), p, d / "calibration.png", title)
        (d / "lineage.json").write_text(json.dumps(_lineage(t), indent=1, default=str))
        mlflow.log_artifacts(str(d))


def _log_model(t: Training, settings: Settings) -> str:
    """The model's URI: the global model's own files (one copy, many registered names), or newly
    logged (a silo tenant's classic family sealed with its key: its arrays hold the item ids)."""
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    if t.winner.model_uri is not None:
        return t.winner.model_uri
    if t.winner.recommender is not None:  # a classic family: its arrays, no MLmodel, nothing to unpickle
        import mlflow

        from ml.models import recsys

        with tempfile.TemporaryDirectory() as tmp:
            key = None if t.tenant is None else sealed_files.writer_key(settings, t.tenant_id)
            recsys.save(t.winner.recommender, Path(tmp), key)
            mlflow.log_artifacts(tmp, artifact_path="model")
        return f"{mlflow.get_artifact_uri()}/model"
    booster = t.winner.served or t.winner.booster
    if t.winner.served is not None:  # the gate judges the holdout-free one (ml.models.refit)
        mlflow.log_text(t.winner.booster.model_to_string(), JUDGED_ARTIFACT)
    example = None if t.holdout.empty else _input_example(t.kind, t.holdout, t.features)
    sig = infer_signature(example, predict(t.kind, booster, example, t.features)) if example is not None else None
    info = mlflow.lightgbm.log_model(
        booster, name="model", signature=sig, input_example=example, pip_requirements=_pip_requirements()
    )
    return str(info.model_uri)


def describe(t: Training, decision: GateDecision) -> str:
    """The version's description in the MLflow UI (Markdown): its family and what it learned from
    (a link to the global model it is or started from), the gate's verdict, and its headline metric
    against the baseline on the same holdout."""
    h = t.kind.headline
    parts = [f"**{t.winner.family}**, trained on `{t.winner.trained_on}` (snapshot `{t.snapshot_id}`)."]
    if t.global_model:
        g, v = t.global_model, t.winner.global_version
        verb = "Serves" if t.winner.trained_on == "global" else "Fine-tuned from"
        parts.append(f"{verb} the global model [{g} v{v}](#/models/{g}/versions/{v}).")
    if t.winner.refit_cutoffs:
        rows = f", {t.winner.refit_rows} rows" if t.winner.refit_rows else ""
        whose = "the global model's holdout" if t.winner.model_uri is not None else "the holdout"
        parts.append(
            f"Serves the recipe refitted on the cutoffs {t.winner.refit_cutoffs}{rows}; "
            f"{whose} judged the one trained before it (`{JUDGED_ARTIFACT}`)."
        )
    verdict = "promoted to champion" if decision.promote else "refused: challenger"
    parts.append(f"Gate: **{verdict}**. {decision.reason}")
    ours, base = t.winner.metrics.get(h), t.baseline.get(h)
    if ours is not None and base is not None:
        parts.append(f"Holdout {h}: **{ours:.4f}** vs baseline {base:.4f} ({ours - base:+.4f}).")
    ours, base = t.winner.metrics.get(f"random_{h}"), t.baseline.get(f"random_{h}")
    if ours is not None and base is not None:  # the random protocol picked the family: ml.models.ranking
        parts.append(
            f"Random protocol {h}: **{ours:.4f}** vs the best popularity list {base:.4f} ({ours - base:+.4f})."
        )
    return "\n\n".join(parts)


def _create_version(name: str, model_uri: str, run_id: str | None, tags: dict[str, str], settings: Settings) -> Any:
    """A new version of the registered model ``name`` (which exists: ``registry.ensure_model``).

    What ``mlflow.register_model`` does for these URIs, through the client: a logged model
    (``models:/<model_id>``) is linked by its id (MLflow takes the run from it). Not
    ``register_model`` itself: it first tries to create the registered model and prints
    "Registered model ... already exists" to stderr, an ERROR line in a successful Airflow task's log.
    """
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
    return registry.client(settings).create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)


def log_and_register(t: Training, policy: TrainSettings, settings: Settings) -> dict[str, Any]:
    """Log one run (params, metrics, plots, model), register it as a new version, then gate it.

    Returns the outcome: ``version``, ``run_id``, ``trained_on``, ``promoted``, ``reason``, ``metrics``,
    ``baseline_metrics`` and lineage.
    """
    import mlflow

    name = registry.model_name(t.kind.name, t.tenant_id)
    registry.ensure_model(name, t.tenant_id, t.kind.name, settings)
    tags = _run_tags(t)
    started = time.perf_counter()
    run_name = f"{t.tenant_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    experiment = registry.experiment_id(t.kind.name, settings)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as run:
        mlflow.log_params(_run_params(t, policy))
        mlflow.log_metrics(_run_metrics(t))
        _log_artifacts(t)
        model_uri = _log_model(t, settings)
        run_id = run.info.run_id
        features = [] if t.winner.recommender is not None else t.features  # a family reads the history mart
        version_tags = {k: v for k, v in tags.items() if k != "actor"} | {"features": json.dumps(features)}
        borrowed = t.winner.model_uri is not None  # a global version's tag, for this tenant
        learnt = t.winner.learnt_until if borrowed else learnt_until(t.holdout)
        if learnt and t.winner.family == LIGHTGBM:  # what ml.models.champion.learnt_the_holdout checks
            version_tags[LEARNT_UNTIL] = json.dumps(learnt, sort_keys=True)  # a global's: a day per member
        own_files = t.winner.recommender is not None  # a family's arrays, in this run's artifacts
        mv = _create_version(name, model_uri, run_id if own_files else None, version_tags, settings)
    t.winner.snapshot_id = t.snapshot_id
    decision = gate(t.kind, name, t.winner, t.holdout, t.features, t.catalogue, t.baseline, policy, settings, t.ranking)
    record_decision(t.kind, t.tenant_id, name, str(mv.version), run_id, decision, settings)
    try:  # the description is for people: its failure must not fail a version the gate already decided
        registry.client(settings).update_model_version(name, str(mv.version), description=describe(t, decision))
    except Exception:
        log.warning("%s v%s: description not written", name, mv.version, exc_info=True)
    verdict = "promoted" if decision.promote else "challenger"
    log.info("%s v%s (%s): %s — %s", name, mv.version, t.winner.trained_on, verdict, decision.reason)
    return {
        "tenant_id": t.tenant_id,
        "kind": t.kind.name,
        "model": name,
        "version": str(mv.version),
        "run_id": run_id,
        "model_uri": model_uri,
        "trained_on": t.winner.trained_on,
        "family": t.winner.family,
        "promoted": decision.promote,
        "reason": decision.reason,
        "metrics": t.winner.metrics,
        "baseline_metrics": t.baseline,
        "snapshot_id": t.snapshot_id,
        "log_seconds": round(time.perf_counter() - started, 2),
    }


@cache
def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"lightgbm=={version('lightgbm')}", f"numpy=={version('numpy')}", f"pandas=={version('pandas')}"]


def _log_explanations(
    kind: ModelKind, booster: Any, holdout: pd.DataFrame, features: list[str], d: Path, tenant_id: str
) -> None:
    """Importance (gain, split) and LightGBM's own SHAP contributions on a holdout sample."""

    gain = booster.feature_importance("gain")
    split_ = booster.feature_importance("split")
    if holdout.empty:
        contrib = np.zeros(len(features))
    else:
        sample = holdout.sample(min(len(holdout), 200), random_state=0)  # a mean |contribution| per feature
        contrib = np.abs(booster.predict(kind.matrix(sample, features), pred_contrib=True, num_threads=1)[:, :-1]).mean(
            axis=0
        )
    table = pd.DataFrame({"feature": features, "gain": gain, "split": split_, "mean_abs_shap": contrib})
    table.sort_values("gain", ascending=False).to_csv(d / "feature_importance.csv", index=False)
    plots.plot_importance(features, gain, contrib, d / "feature_importance.png", f"{kind.name} · {tenant_id}")
