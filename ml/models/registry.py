"""The MLflow model registry contract: names, aliases, experiments, and the audited champion moves.

Names are ``<kind>.<tenant_id>`` and, one per region, ``<kind>.global.<region>`` (its owner,
``global.<region>``, stands where a tenant id does: in the audit log and the lineage tags); aliases ``champion`` (serves) and
``challenger`` (a refused version under A/B test, cleared when that version or a newer one is promoted). Every version carries the lineage tags ``tenant_id``,
``region``, ``trained_on`` (``global``, ``tenant``, ``fine_tuned``), ``snapshot_id``,
``manifest_hash``, ``git_commit`` and ``features``. Only the promotion gate
(:mod:`ml.models.gate`, through :func:`promote`) and the audited commands here (:func:`promote`,
:func:`rollback`) move ``champion``; each move is a row of the audit log (:mod:`ml.models.audit`),
and the decision is also written on the version as ``gate.*`` tags for the MLflow UI.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

from ml.core.errors import RegistryError
from ml.core.ids import validate_slug
from ml.core.settings import Settings, get_settings
from ml.models import audit
from ml.models.kinds import get_kind
from ml.models.run_summary import holdout_summary

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
GLOBAL = "global"
TRAINED_ON = ("global", "tenant", "fine_tuned")


def global_owner(region: str) -> str:
    """``global.eu``: who owns a region's global models (the part of their names after the kind).

    Raises:
        TenantError: ``region`` is not a slug.
    """
    return f"{GLOBAL}.{validate_slug(region, 'region')}"


def is_global(owner: str) -> bool:
    """Whether an owner (a tenant id, or :func:`global_owner`) names a region's global model."""
    return owner.startswith(f"{GLOBAL}.")


def owner_region(owner: str) -> str:
    """The region of a global owner (``global.eu`` -> ``eu``).

    Raises:
        RegistryError: ``owner`` is a tenant id.
    """
    if not is_global(owner):
        raise RegistryError(f"{owner!r} is a tenant, not a region's global model")
    return validate_slug(owner.removeprefix(f"{GLOBAL}."), "region")


def model_name(kind: str, owner: str) -> str:
    """``recommender.acme``, ``churn.global.eu``: validated, never built from raw input.

    Raises:
        RegistryError: ``owner`` is the bare ``global`` (name its region: ``global.<region>``).
        TenantError: the tenant id or region is not a slug.
    """
    get_kind(kind)
    if owner == GLOBAL:
        raise RegistryError(f"{kind}.global has a model per region; name it as {kind}.global.<region>")
    return f"{kind}.{global_owner(owner_region(owner)) if is_global(owner) else validate_slug(owner)}"


def client(settings: Settings | None = None):
    """An MLflow client on this installation's tracking store and registry (one per process and URI)."""
    import mlflow

    settings = settings or get_settings()
    uri = settings.mlflow_tracking_uri
    if mlflow.get_tracking_uri() != uri:
        # MLflow also exports the URI to this process's environment (for subprocesses), where
        # Settings would take it for the operator's choice: a store derived from one home would
        # then leak into the next home this process uses. Keep the environment as it was.
        before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return client_at(uri)


@functools.cache
def client_at(uri: str) -> Any:
    """The MLflow client of a tracking URI (cached: opening a SQL store checks its schema, seconds
    on SQLite, so it is done once per process). :func:`client` is the way in; this is for code
    that keeps the URI as a cache key."""
    from filelock import FileLock
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    db = uri.removeprefix("sqlite:///")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    # The first client on a new store creates and migrates its schema; two processes doing that
    # at once (the two mapped global-model tasks on a fresh install) fail with an Alembic
    # "expected to match one row" error. One process at a time opens both stores.
    with FileLock(f"{db}.open.lock"):
        c = MlflowClient(tracking_uri=uri, registry_uri=uri)
        c.search_experiments(max_results=1)
        c.search_registered_models(max_results=1)
        return c


# MLflow 3's UI opens it as model training (runs, metrics), not as GenAI (its default without the tag)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(kind: str, settings: Settings | None = None) -> str:
    """One experiment per model kind (``tenantflow-<kind>``): every tenant's runs side by side
    (filter with ``tags.tenant_id = 'acme'``)."""
    settings = settings or get_settings()
    c = client(settings)
    name = f"tenantflow-{kind}"
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = (settings.stores.mlflow_artifacts / kind).resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=location, tags={"kind": kind, **EXPERIMENT_TAGS})
    except Exception:  # another task created it first
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def version_by_alias(name: str, alias: str, settings: Settings | None = None):
    """The version behind an alias as the platform left it, or None (no such model, alias not set).

    ``champion`` and ``challenger`` follow the audit log (:func:`audited_version`): where the alias
    was moved or deleted outside the platform's promote/rollback, the audited version is returned
    (and a warning logged), so training, the gate, batch scoring and monitoring use what the API
    serves.
    """
    mv = _alias_version(name, alias, settings)
    if alias not in (CHAMPION, CHALLENGER):
        return mv
    kind, tenant_id = name.split(".", 1)
    audited = audited_version(kind, tenant_id, alias, settings)
    if (str(mv.version) if mv is not None else None) == audited:
        return mv
    log.warning(
        "%s: the %s alias is at %s but the audit log says v%s (moved outside the platform); using v%s",
        name,
        alias,
        f"v{mv.version}" if mv is not None else "nothing",
        audited,
        audited,
    )
    return _version(name, audited, settings) if audited is not None else None


def global_champion(kind: str, region: str, settings: Settings | None = None):
    """The champion of ``<kind>.global.<region>`` (:func:`version_by_alias`), or None."""
    return version_by_alias(model_name(kind, global_owner(region)), CHAMPION, settings)


def _version(name: str, version: str, settings: Settings | None):
    from mlflow.exceptions import MlflowException

    try:
        return client(settings).get_model_version(name, version)
    except MlflowException:  # the audited version was deleted from MLflow
        log.error("%s: v%s, where the audit log left the alias, no longer exists", name, version)
        return None


def _alias_version(name: str, alias: str, settings: Settings | None = None):
    """The version the alias points at in MLflow right now, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client(settings).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def ensure_model(name: str, tenant_id: str, kind: str, settings: Settings | None = None) -> None:
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        c.get_registered_model(name)
    except MlflowException:
        try:
            c.create_registered_model(
                name,
                tags={"tenant_id": tenant_id, "kind": kind},
                description=(
                    f"global {kind} model of region {owner_region(tenant_id)}"
                    if is_global(tenant_id)
                    else f"{kind} model of tenant {tenant_id}"
                ),
            )
        except MlflowException:  # created concurrently
            pass


def promote(
    kind: str, tenant_id: str, version: str, reason: str, settings: Settings | None = None, who: str | None = None
) -> audit.AuditEntry:
    """Point ``champion`` at ``version`` (audited). The gate calls this; so can a person."""
    settings = settings or get_settings()
    name = model_name(kind, tenant_id)
    c = client(settings)
    c.get_model_version(name, version)  # raises if it does not exist
    version = str(version)
    current = version_by_alias(name, CHAMPION, settings)
    entry = audit.record(
        kind, tenant_id, "promote", str(current.version) if current else None, version, reason, settings, who
    )
    _move(name, CHAMPION, version, entry, settings)
    challenger = _alias_version(name, CHALLENGER, settings)
    if challenger is not None and str(challenger.version) == version:  # the promote row clears it
        c.delete_registered_model_alias(name, CHALLENGER)
    elif challenger is not None and int(challenger.version) < int(version):
        _retire_challenger(kind, tenant_id, str(challenger.version), version, settings, who)
    c.set_model_version_tag(name, version, "gate.decision", "promoted")
    c.set_model_version_tag(name, version, "gate.reason", reason[:4000])
    _pin_snapshot(kind, tenant_id, version, settings)
    return entry


def make_challenger(
    kind: str, tenant_id: str, version: str, champion: str | None, reason: str, settings: Settings | None = None
) -> audit.AuditEntry:
    """Point ``challenger`` at a version the gate refused (audited as ``refuse``; the A/B split serves it)."""
    settings = settings or get_settings()
    entry = audit.record(kind, tenant_id, "refuse", champion, str(version), reason, settings)
    _move(model_name(kind, tenant_id), CHALLENGER, str(version), entry, settings)
    return entry


def _pin_snapshot(kind: str, tenant_id: str, version: str, settings: Settings) -> None:
    """Keep the champion's training snapshot: the monitor compares today's data with it."""
    if is_global(tenant_id):
        return
    from ml.data import snapshots

    tags = client(settings).get_model_version(model_name(kind, tenant_id), version).tags
    if tags.get("snapshot_id") and tags.get("region"):
        snapshots.pin(settings, tags["region"], tenant_id, tags["snapshot_id"], kind)


def _retire_challenger(kind: str, tenant_id: str, old: str, champion: str, settings: Settings, who: str | None) -> None:
    """End the A/B test of a refused version older than the new champion (audited as ``retire``);
    a failed deletion is undone by a ``move_failed`` row, and the promotion stands."""
    audit.record(kind, tenant_id, "retire", old, None, f"superseded by champion v{champion}", settings, who)
    try:
        client(settings).delete_registered_model_alias(model_name(kind, tenant_id), CHALLENGER)
    except Exception as exc:
        audit.record(kind, tenant_id, FAILED, None, old, repr(exc), settings)
        log.warning("%s.%s: challenger v%s kept (its alias could not be deleted): %r", kind, tenant_id, old, exc)


MOVES = ("promote", "rollback")  # audit actions that move ``champion``
FAILED = "move_failed"  # the alias did not move after its audit row was written: that row is undone


def _replay(kind: str, tenant_id: str, settings: Settings | None) -> tuple[list[str], str | None, str | None]:
    """The audit log replayed: (champion history, the champion, the challenger) as the platform left them."""
    history: list[str] = []
    champion = challenger = None
    states: list[tuple[list[str], str | None, str | None]] = []
    for e in audit.entries(settings, tenant_id, kind):
        if e.action == FAILED and states:
            history, champion, challenger = states.pop()
            continue
        states.append((list(history), champion, challenger))
        if e.action == "promote" and e.to_version:
            history = [v for v in history if v != e.to_version] + [e.to_version]
            champion = e.to_version
            challenger = None if challenger == e.to_version else challenger
        elif e.action == "retire":
            challenger = None if challenger == e.from_version else challenger
        elif e.action == "rollback":
            if e.from_version in history:
                history.remove(e.from_version)
            champion = e.to_version
        elif e.action == "refuse" and e.to_version:
            challenger = e.to_version
    return history, champion, challenger


def champion_history(kind: str, tenant_id: str, settings: Settings | None = None) -> list[str]:
    """Versions that have served as champion, oldest first, without those rolled back since."""
    return _replay(kind, tenant_id, settings)[0]


def audited_version(kind: str, tenant_id: str, alias: str, settings: Settings | None = None) -> str | None:
    """The version the audit log says ``alias`` points at: where the platform's last promote,
    rollback or refusal left it. An alias anywhere else was moved outside the platform."""
    _, champion, challenger = _replay(kind, tenant_id, settings)
    return champion if alias == CHAMPION else challenger


def _move(name: str, alias: str, version: str, entry: audit.AuditEntry, settings: Settings) -> None:
    """Move an alias after its audit row is written (so a reader never sees an unaudited move);
    if the move fails, a ``move_failed`` row undoes that row."""
    try:
        client(settings).set_registered_model_alias(name, alias, version)
    except Exception as exc:
        audit.record(entry.kind, entry.tenant_id, FAILED, entry.to_version, entry.from_version, repr(exc), settings)
        raise


def rollback(
    kind: str, tenant_id: str, reason: str, settings: Settings | None = None, who: str | None = None
) -> audit.AuditEntry:
    """Move ``champion`` back to the version that served before the current one (audited)."""
    settings = settings or get_settings()
    name = model_name(kind, tenant_id)
    current = version_by_alias(name, CHAMPION, settings)
    if current is None:
        raise RegistryError(f"tenant {tenant_id}: {name} has no champion; nothing to roll back.")
    history = champion_history(kind, tenant_id, settings)
    current_version = str(current.version)
    earlier = history[: history.index(current_version)] if current_version in history else history
    if not earlier:
        raise RegistryError(
            f"tenant {tenant_id}: {name} v{current_version} is the first champion; there is no earlier version to "
            f"roll back to. Promote another version with `tenantflow models promote {tenant_id} {kind} VERSION`."
        )
    previous = earlier[-1]
    entry = audit.record(kind, tenant_id, "rollback", current_version, previous, reason, settings, who)
    _move(name, CHAMPION, previous, entry, settings)
    c = client(settings)
    c.set_model_version_tag(name, current_version, "gate.decision", "rolled_back")
    c.set_model_version_tag(name, current_version, "gate.reason", reason[:4000])
    _pin_snapshot(kind, tenant_id, previous, settings)
    return entry


def describe(kind: str, tenant_id: str, settings: Settings | None = None) -> dict | None:
    """Champion and challenger of one registered model, with their lineage and metrics.

    ``trained_because`` is why the champion's training ran (its run's ``reason`` tag: manual, schedule,
    drift, ...; ``challenger_trained_because`` the challenger's); ``gate_reason`` why the gate promoted
    it, ``challenger_reason`` why it refused the challenger. None when the model has neither alias.
    """
    settings = settings or get_settings()
    name = model_name(kind, tenant_id)
    champ = version_by_alias(name, CHAMPION, settings)
    chall = version_by_alias(name, CHALLENGER, settings)
    if champ is None and chall is None:
        return None
    out: dict = {
        "champion_version": str(champ.version) if champ else None,
        "challenger_version": str(chall.version) if chall else None,
        "trained_on": None,
        "metrics": {},
        "baseline_metrics": {},
    }
    if chall is not None:  # a version refused (or not yet judged) since the champion: why it was trained, when
        out["challenger_reason"] = chall.tags.get("gate.reason")
        out["challenger_trained_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(chall.creation_timestamp / 1000))
        if chall_run := chall.tags.get("run_id") or chall.run_id:
            out["challenger_trained_because"] = client(settings).get_run(chall_run).data.tags.get("reason")
    if champ is not None:
        tags = champ.tags
        out["trained_on"] = tags.get("trained_on")
        out["family"] = tags.get("family") or "lightgbm"
        out["trained_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(champ.creation_timestamp / 1000))
        out["snapshot_id"] = tags.get("snapshot_id")
        # a tenant version that borrows the global model's files names its own run in a tag
        out["run_id"] = tags.get("run_id") or champ.run_id
        if out["run_id"]:
            run = client(settings).get_run(out["run_id"])
            out["trained_because"] = run.data.tags.get("reason")  # manual, schedule, drift, ...
            m = run.data.metrics
            shown = get_kind(kind).reported_metrics
            out["metrics"] = {k: round(m[k], 4) for k in shown if k in m}
            out["baseline_metrics"] = {k: round(m[f"baseline_{k}"], 4) for k in shown if f"baseline_{k}" in m}
            out["gate_reason"] = tags.get("gate.reason")
            if holdout := holdout_summary(run.data.params, m, get_kind(kind).headline):
                out["holdout"] = holdout  # how many users the competition's metrics stand on, and how judged
            if "rows_holdout" in m:  # the examples the metrics stand on (churn, engagement: a user each)
                out["holdout_rows"] = int(m["rows_holdout"])
            replaced = run.data.tags.get("gate.champion_version")
            if replaced and tags.get("gate.decision") == "promoted":
                # the champion this version replaced, re-scored by the gate on the same holdout
                out["previous_champion"] = {
                    "version": replaced,
                    "metrics": {k: round(m[f"champion.{k}"], 4) for k in shown if f"champion.{k}" in m},
                }
    return out
