"""The one way to load a registered model: its LightGBM booster and the features it reads, or
a classic recommender family (:mod:`ml.models.recsys`, tag ``family``) read from its arrays.

Versions are immutable, so a loaded model is cached per process. The input columns a version
was trained on are its ``features`` tag (a JSON list, in the order the model reads them).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ml.core.settings import Settings
from ml.models import registry


def version_features(mv: Any) -> list[str] | None:
    """The input columns of a model version (``features`` tag), or None when it has none."""
    raw = (mv.tags or {}).get("features")
    return json.loads(raw) if raw else None


def version_run_id(mv: Any) -> str | None:
    """The run that made a version (a tenant version borrowing the global model's files names it in a tag)."""
    return (mv.tags or {}).get("run_id") or mv.run_id


def load_booster(name: str, version: str, settings: Settings) -> Any:
    """A registered version's LightGBM booster (``lightgbm.Booster``; LightGBM's own text format, no pickle)."""
    registry.client(settings)
    return _load_booster(settings.mlflow_tracking_uri, name, str(version))


def version_family(mv: Any) -> str:
    """``lightgbm``, or the classic family a version holds (``family`` tag; untagged: LightGBM)."""
    return (mv.tags or {}).get("family") or "lightgbm"


def load_family(name: str, version: str, settings: Settings) -> Any:
    """A registered classic family (:class:`ml.models.recsys.Recommender`), read without unpickling."""
    registry.client(settings)
    return _load_family(settings.mlflow_tracking_uri, name, str(version))


def download_family(name: str, version: str, folder: Path) -> Path:
    """Copy a family version's files (``family.json``, ``arrays.npz``) into ``folder``; returns it."""
    import mlflow.artifacts

    folder.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(folder)))


@lru_cache(maxsize=32)
def _load_family(uri: str, name: str, version: str) -> Any:
    from ml.models import recsys

    with tempfile.TemporaryDirectory() as tmp:
        return recsys.load(download_family(name, version, Path(tmp)))


@lru_cache(maxsize=32)
def _load_booster(uri: str, name: str, version: str) -> Any:
    import mlflow.lightgbm

    return mlflow.lightgbm.load_model(f"models:/{name}/{version}")


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


def load_champion(kind: str, tenant_id: str, settings: Settings, alias: str = registry.CHAMPION) -> Champion | None:
    """The tenant's version behind ``alias`` with its booster, or None when the alias is not set."""
    name = registry.model_name(kind, tenant_id)
    mv = registry.version_by_alias(name, alias, settings)
    if mv is None:
        return None
    features = version_features(mv)
    if features is None:
        raise ValueError(f"{name} v{mv.version} has no features tag; it was not registered by Tenantflow's training")
    if version_family(mv) != "lightgbm":
        return Champion(kind, name, mv, None, [], load_family(name, str(mv.version), settings))
    return Champion(kind, name, mv, load_booster(name, str(mv.version), settings), features)
