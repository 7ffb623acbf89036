"""The one way to load a registered model: its LightGBM booster and the features it reads, or
a classic recommender family (:mod:`ml.models.recsys`, tag ``family``) read from its arrays.

Versions are immutable, so a loaded model is cached per process. The input columns a version
was trained on are its ``features`` tag (a JSON list, in the order the model reads them).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import pandas as pd
from cachetools import LRUCache, cached

from ml.core.settings import Settings
from ml.models import registry

BOOSTER_CLASS = "lightgbm.basic.Booster"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class UntrustedModel(ValueError):
    """A registered version Tenantflow refuses to load: another tenant's, or not a format it parses."""


def version_features(mv: Any) -> list[str] | None:
    """The input columns of a model version (``features`` tag), or None when it has none."""
    raw = (mv.tags or {}).get("features")
    return json.loads(raw) if raw else None


def version_run_id(mv: Any) -> str | None:
    """The run that made a version (a tenant version borrowing the global model's files names it in a tag)."""
    return (mv.tags or {}).get("run_id") or mv.run_id


def load_booster(name: str, version: str, settings: Settings) -> Any:
    """A registered version's LightGBM booster (``lightgbm.Booster``), parsed from LightGBM's text format.

    Raises:
        UntrustedModel: the version does not belong to the model's tenant (:func:`check_owner`), or
            its files are not a LightGBM text model (:func:`_booster_text`).
    """
    registry.client(settings)
    return _load_booster(settings.mlflow_tracking_uri, name, str(version))


# where a version refitted for serving keeps the booster the gate judged (ml.models.refit), in the
# run that made its files; its ``judged_model`` tag names this path
JUDGED_ARTIFACT = "judged/model.txt"


def load_judged_booster(name: str, version: str, settings: Settings) -> Any:
    """The booster a version was judged as: the one it serves, or, for a version refitted for
    serving on newer cutoffs (tag ``judged_model``, :mod:`ml.models.refit`), the holdout-free one
    its files' run kept (:data:`JUDGED_ARTIFACT`). A champion re-scored on a newer holdout is read
    through this: its refit learned labels that reach into that holdout's window.

    Raises:
        UntrustedModel: the version does not belong to the model's tenant (:func:`check_owner`), its
            tag names another file, or the file is not a LightGBM text model.
    """
    registry.client(settings)
    return _load_judged(settings.mlflow_tracking_uri, name, str(version))


LEARNT_UNTIL = "labels_learnt_until"  # version tag: {tenant: the day its learnt labels end}, JSON


def learnt_until(holdout: Any) -> dict[str, str]:
    """Per tenant of a training's ``holdout`` (a kind's examples, ``tenant_id`` and ``cutoff_date``
    columns), the holdout's cutoff as ``YYYY-MM-DD``: the judged booster learnt that tenant's labels
    up to it, no further (:func:`ml.models.fit.time_holdout` purges the training cutoffs whose label
    window reaches past it). A global run's holdout holds one cutoff per member."""
    if holdout.empty:
        return {}
    ends = holdout.groupby("tenant_id")["cutoff_date"].max()
    return {str(t): f"{pd.Timestamp(c):%Y-%m-%d}" for t, c in ends.items()}


def labels_learnt(mv: Any) -> dict[str, str]:
    """A version's tag :data:`LEARNT_UNTIL` ({tenant: ``YYYY-MM-DD``}; empty when it has none)."""
    return json.loads((mv.tags or {}).get(LEARNT_UNTIL) or "{}")


def learnt_the_holdout(mv: Any, holdout: Any) -> str | None:
    """Why a learnt version's judged booster cannot be judged on ``holdout`` (as for
    :func:`learnt_until`; None: it can): for a tenant of the holdout, it learnt labels past that
    tenant's cutoff there (tag :data:`LEARNT_UNTIL`). That happens when a tenant's label window grew,
    which moves its holdout back; judging the version there favours it as a refit is favoured on its
    own training data. Versions from before the tag, classic families (refitted before the cutoff to
    be judged) and a kind's baseline made servable (nothing learnt) are judged as before.
    """
    learnt = labels_learnt(mv)
    if not learnt or version_family(mv) != "lightgbm":
        return None
    past = {t: (learnt[t], c) for t, c in learnt_until(holdout).items() if t in learnt and learnt[t] > c}
    if not past:
        return None
    first, (theirs, ours) = min(past.items())
    more = f" (and {len(past) - 1} other tenants')" if len(past) > 1 else ""
    return f"{mv.name} v{mv.version} learnt {first}'s labels up to {theirs}{more}, after this holdout's cutoff {ours}"


def version_label(family: str | None, trained_on: str | None) -> str:
    """How a version is named everywhere (status, the gate's reasons, the demo): its model family (a version from
    before the family tag is LightGBM) and what it was trained on, ``lightgbm, tenant``; the family alone without
    ``trained_on``."""
    return f"{family or 'lightgbm'}, {trained_on}" if trained_on else family or "lightgbm"


def version_family(mv: Any) -> str:
    """``lightgbm``, or the classic family a version holds (``family`` tag; untagged: LightGBM)."""
    return (mv.tags or {}).get("family") or "lightgbm"


def holds_booster(family: str) -> bool:
    """Whether a version of ``family`` is a LightGBM text model: ``lightgbm``, or a kind's baseline
    made servable (``ModelKind.baseline_name`` of a kind with a ``baseline_feature``: churn's
    ``recency``, engagement's ``same_as_last_window``, :mod:`ml.models.servable_baseline`); a classic
    recommender family's are arrays."""
    from ml.models.kinds import all_kinds

    return family == "lightgbm" or family in {k.baseline_name for k in all_kinds() if k.baseline_feature}


def load_family(name: str, version: str, settings: Settings) -> Any:
    """A registered classic family (:class:`ml.models.recsys.Recommender`), read without unpickling
    (a silo tenant's sealed files opened with its key, :func:`family_reader`). Versions are
    immutable: the 32 most recently used are kept (``cachetools``' LRU cache, thread-safe).

    Raises:
        UntrustedModel: the version does not belong to the model's tenant (:func:`check_owner`).
        TenantKeyError: a silo tenant's files do not open with the key its provider gives.
    """
    registry.client(settings)
    return _load_family(settings.mlflow_tracking_uri, name, str(version), settings)


# keyed by (tracking URI, name, version): Settings do not hash; the lock guards the cache, not the
# download (cachetools calls the function outside it), so a slow download holds up no other model
@cached(LRUCache(maxsize=32), key=lambda uri, name, version, settings: (uri, name, version), lock=threading.Lock())
def _load_family(uri: str, name: str, version: str, settings: Settings) -> Any:
    from ml.models import recsys

    with tempfile.TemporaryDirectory() as tmp:
        folder = _download_family(uri, name, version, Path(tmp))
        return recsys.load(folder, family_reader(name, settings))


def family_reader(name: str, settings: Settings) -> Callable[[Path], bytes]:
    """How a version of the registered model ``name`` (``<kind>.<tenant>``) reads its files: a silo
    tenant's are sealed with its key (:func:`ml.models.tracking` seals them), others plain; a
    global model's are plain."""
    from ml.core import sealed_files

    owner = name.split(".", 1)[1]
    if registry.is_global(owner):
        return Path.read_bytes
    kind = name.split(".", 1)[0]
    retrain = f"retrain the model: `tenantflow train --tenant {owner} --kind {kind} --force`"
    return partial(sealed_files.read_bytes, settings=settings, tenant_id=owner, if_damaged=retrain)


def download_family(name: str, version: str, folder: Path, settings: Settings) -> Path:
    """Copy a family version's two files (``family.json``, ``arrays.npz``) into ``folder``; returns it.

    Raises:
        UntrustedModel: the version does not belong to the model's tenant (:func:`check_owner`).
    """
    registry.client(settings)
    return _download_family(settings.mlflow_tracking_uri, name, version, folder)


def _download_family(uri: str, name: str, version: str, folder: Path) -> Path:
    import mlflow.artifacts

    from ml.models.recsys.families import FILES

    root = _owned_root(uri, name, version)
    folder.mkdir(parents=True, exist_ok=True)
    for file in FILES:
        mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{file}", dst_path=str(folder), tracking_uri=uri)
    return folder


@lru_cache(maxsize=32)
def _load_booster(uri: str, name: str, version: str) -> Any:
    import lightgbm as lgb

    root = _owned_root(uri, name, version)
    with tempfile.TemporaryDirectory() as tmp:
        text = _booster_text(root, Path(tmp), f"{name} v{version}", uri)
    return lgb.Booster(model_str=text)


@lru_cache(maxsize=32)
def _load_judged(uri: str, name: str, version: str) -> Any:
    import lightgbm as lgb
    import mlflow.artifacts

    c = registry.client_at(uri)
    mv = c.get_model_version(name, version)
    path = (mv.tags or {}).get("judged_model")
    if not path:
        return _load_booster(uri, name, version)
    label = f"{name} v{version}"
    if path != JUDGED_ARTIFACT:
        raise UntrustedModel(f"{label}: its judged_model tag names {path!r}, not {JUDGED_ARTIFACT!r}; not loaded")
    check_owner(mv, c)
    run_id = _files_run(mv, c)
    with tempfile.TemporaryDirectory() as tmp:
        file = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=uri)
        text = _lightgbm_text(Path(file).read_bytes(), f"{label}: {path}")
    return lgb.Booster(model_str=text)


def _owned_root(uri: str, name: str, version: str) -> str:
    """Where a version's files are, once :func:`check_owner` accepted it."""
    c = registry.client_at(uri)
    check_owner(c.get_model_version(name, version), c)
    return c.get_model_version_download_uri(name, version).rstrip("/")


def _booster_text(root: str, tmp: Path, label: str, uri: str) -> str:
    """The LightGBM text of a version's files, after checking its ``MLmodel`` names a plain Booster.

    Only two files are fetched: ``MLmodel`` (read with ``yaml.safe_load``) and the booster's data
    file, which must be LightGBM's text format (it starts with ``tree``). MLflow's own loader is
    never called: an ``MLmodel`` may name any ``loader_module`` or a pickled model class, and
    published advisories show flavors that unpickle despite ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``.
    """
    import mlflow.artifacts
    import yaml

    mlmodel = Path(mlflow.artifacts.download_artifacts(f"{root}/MLmodel", dst_path=str(tmp / "m"), tracking_uri=uri))
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("lightgbm") or {}
    data = str(flavor.get("data", ""))
    if flavor.get("model_class") != BOOSTER_CLASS or not _PLAIN_NAME.fullmatch(data):
        raise UntrustedModel(
            f"{label}: its MLmodel is not a LightGBM Booster in text format (lightgbm flavor "
            f"model_class={flavor.get('model_class')!r}, data={data!r}); Tenantflow loads only its own "
            "LightGBM text models and classic families, never pickles. Re-register it through `tenantflow train`."
        )
    file = Path(mlflow.artifacts.download_artifacts(f"{root}/{data}", dst_path=str(tmp / "d"), tracking_uri=uri))
    return _lightgbm_text(file.read_bytes(), f"{label}: {data}")


def _lightgbm_text(raw: bytes, what: str) -> str:
    """``raw`` decoded, once it is LightGBM's text format (it begins with ``tree``).

    Raises:
        UntrustedModel: it does not; ``what`` names the file in the message.
    """
    if not raw.startswith(b"tree\n"):
        raise UntrustedModel(f"{what} is not a LightGBM text model (it does not begin with 'tree'); not loaded")
    return raw.decode("utf-8")


def check_owner(mv: Any, c: Any) -> None:
    """Refuse a version that does not belong to the registered model's tenant.

    ``<kind>.<tenant>`` holds only versions whose ``tenant_id`` tag is that tenant, registered by a
    run of that tenant, with files made by a run of that tenant (or, for a tenant served by a
    global model, ``trained_on=global``, by a run of the region's global model its ``global_model``
    tag names, ``<kind>.global.<region>``; a global model of no region, from before residency, is
    refused: retrain the tenant).

    Raises:
        UntrustedModel: a tag, the registering run or the files' run names another tenant or region.
    """
    tenant = mv.name.split(".", 1)[1]
    tags = mv.tags or {}
    label = f"{mv.name} v{mv.version}"
    if tags.get("tenant_id") != tenant:
        raise UntrustedModel(f"{label}: its tenant_id tag is {tags.get('tenant_id')!r}, not {tenant!r}; not loaded")
    run_id = version_run_id(mv)  # a version of the global model's files names its tenant's run in a tag
    if run_id is None or c.get_run(run_id).data.tags.get("tenant_id") != tenant:
        raise UntrustedModel(f"{label}: it was not registered by a run of tenant {tenant!r}; not loaded")
    source_run = _files_run(mv, c)
    owners = {tenant}
    if tags.get("trained_on") == "global" and not registry.is_global(tenant):  # a tenant served by a global model
        owners.add(_global_owner(tags.get("global_model", ""), label))
    run_tags = c.get_run(source_run).data.tags if source_run else {}
    if run_tags.get("tenant_id") not in owners or run_tags.get("kind") != mv.name.split(".", 1)[0]:
        raise UntrustedModel(
            f"{label}: its files come from run {source_run} of tenant {run_tags.get('tenant_id')!r} "
            f"(kind {run_tags.get('kind')!r}), not {' or '.join(sorted(owners))}; not loaded"
        )


def _global_owner(global_model: str, label: str) -> str:
    """``global.eu`` from a version's ``global_model`` tag (``recommender.global.eu``)."""
    owner = global_model.split(".", 1)[1] if "." in global_model else ""
    if not registry.is_global(owner):
        raise UntrustedModel(
            f"{label}: it is served by a global model of no region ({global_model or 'untagged'}, made before "
            "global models were per region); not loaded. Retrain it: `tenantflow train --tenant <tenant>`."
        )
    return owner


def _files_run(mv: Any, c: Any) -> str | None:
    """The run whose artifacts a version's files are: a logged model's source run, or the run
    whose artifact folder holds a classic family's files."""
    source = str(mv.source)
    if source.startswith("models:/m-"):
        return c.get_logged_model(source.removeprefix("models:/").split("/")[0]).source_run_id
    run_id = version_run_id(mv)
    run = c.get_run(run_id) if run_id else None
    return run_id if run and source.startswith(run.info.artifact_uri.rstrip("/") + "/") else None


@dataclass(frozen=True)
class Champion:
    """A loaded version of ``<kind>.<tenant>`` (the champion, or whichever alias was asked for)."""

    kind: str
    name: str
    version: Any  # mlflow.entities.model_registry.ModelVersion
    booster: Any  # lightgbm.Booster, None for a classic family
    features: list[str]
    recommender: Any = None  # ml.models.recsys.Recommender, for a classic family

    @property
    def family(self) -> str:
        return version_family(self.version)

    @property
    def number(self) -> str:
        return str(self.version.version)

    @property
    def run_id(self) -> str | None:
        return version_run_id(self.version)

    @property
    def trained_on(self) -> str:
        return self.version.tags.get("trained_on", "")

    @property
    def label_days(self) -> int | None:
        """Days after a cutoff its labels counted, the window its predictions are about (its
        ``label_days`` tag, :mod:`ml.models.due`); None for a version trained before the tag."""
        value = (self.version.tags or {}).get("label_days")
        return int(value) if value else None


def load_champion(kind: str, tenant_id: str, settings: Settings, alias: str = registry.CHAMPION) -> Champion | None:
    """The tenant's version behind ``alias`` with its booster, or None when the alias is not set."""
    name = registry.model_name(kind, tenant_id)
    mv = registry.version_by_alias(name, alias, settings)
    if mv is None:
        return None
    features = version_features(mv)
    if features is None:
        raise ValueError(f"{name} v{mv.version} has no features tag; it was not registered by Tenantflow's training")
    if not holds_booster(version_family(mv)):
        return Champion(kind, name, mv, None, [], load_family(name, str(mv.version), settings))
    return Champion(kind, name, mv, load_booster(name, str(mv.version), settings), features)
