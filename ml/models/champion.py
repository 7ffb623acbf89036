"""The one way to load a registered model: its LightGBM booster and the features it reads.

Versions are immutable, so a loaded booster is cached per process. The input columns a version
was trained on are its ``features`` tag (a JSON list, in the order the model reads them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
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
    booster: Any
    features: list[str]

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
    return Champion(kind, name, mv, load_booster(name, str(mv.version), settings), features)
