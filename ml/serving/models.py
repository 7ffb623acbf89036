"""The models the API serves: each tenant's champion (and challenger, where traffic is split) per kind.

Loaded from the MLflow registry by alias (:mod:`ml.models.champion`), swapped in when an alias
moves (the :class:`~ml.serving.alias_watcher.AliasWatcher` says which); a version that fails to
load never replaces a working one, and MLflow being down leaves what is loaded in place. Loaded
models are also kept on disk (``serving/models/<name>/``: LightGBM's text format, or a classic
family's ``family.json`` + ``arrays.npz`` read without unpickling), so a restart while MLflow is
down still serves them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.core import atomic
from ml.core.settings import Settings
from ml.models import registry
from ml.models.champion import download_family, load_booster, version_family, version_features

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One registered version, ready to score."""

    name: str
    version: str
    trained_on: str
    features: list[str]
    booster: Any  # lightgbm.Booster; None for a classic family
    loaded_at: float = field(default_factory=time.time)
    recommender: Any = None  # ml.models.recsys.Recommender, for a classic family
    _index: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    def columns_in(self, columns: dict[str, int]) -> np.ndarray:
        """Indices of this model's features among a snapshot's columns (cached per column layout)."""
        key = (",".join(columns), id(columns))
        idx = self._index.get(key)
        if idx is None:
            missing = [f for f in self.features if f not in columns]
            if missing:
                raise KeyError(
                    f"{self.name} v{self.version} needs features {missing} that the published snapshot lacks"
                )
            idx = np.array([columns[f] for f in self.features], dtype=np.int64)
            self._index = {key: idx}  # one layout at a time: snapshots replace each other
        return idx

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, num_threads=1)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per-row feature contributions (LightGBM's own SHAP values); last column is the bias."""
        return self.booster.predict(rows, num_threads=1, pred_contrib=True)


class MlflowUnavailable(RuntimeError):
    """The registry could not be asked (down, timing out): keep what is loaded."""


class ModelStore:
    """Champion and challenger per (tenant, kind), swapped in when an alias moves."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores = settings.stores
        self.models: dict[tuple[str, str, str], LoadedModel] = {}
        self.last_error: dict[tuple[str, str, str], str] = {}
        self.mlflow_ok: bool | None = None

    def get(self, tenant_id: str, kind: str, arm: str) -> LoadedModel | None:
        return self.models.get((tenant_id, kind, arm))

    def apply(
        self, wanted: Iterable[tuple[str, str, str]], aliases: dict[str, dict[str, str]] | MlflowUnavailable
    ) -> dict[str, int]:
        """Load what moved, given the registry's aliases (or why MLflow could not be asked).

        Returns counts: swapped, unchanged, failed, unavailable, removed.
        """
        counts = {"swapped": 0, "unchanged": 0, "failed": 0, "unavailable": 0, "removed": 0}
        keys = list(wanted)
        if isinstance(aliases, MlflowUnavailable):
            self.mlflow_ok = False
            for tenant_id, kind, arm in keys:
                key = (tenant_id, kind, arm)
                counts["unavailable"] += 1
                self.last_error[key] = str(aliases)
                if key not in self.models:  # e.g. a restart while MLflow is down: the disk copy
                    cached = self._from_disk(registry.model_name(kind, tenant_id), arm)
                    if cached is not None:
                        self.models[key] = cached
            return counts
        self.mlflow_ok = True
        for tenant_id, kind, arm in keys:
            key = (tenant_id, kind, arm)
            name = registry.model_name(kind, tenant_id)
            version = aliases.get(name, {}).get(arm)
            current = self.models.get(key)
            if version is None:
                if current is not None:
                    del self.models[key]  # the alias was removed on purpose (e.g. no challenger any more)
                    counts["removed"] += 1
                continue
            if current is not None and current.version == version:
                counts["unchanged"] += 1
                continue
            try:
                model = self._load(name, version)
            except Exception as exc:
                log.exception(
                    "could not load %s v%s; still serving %s",
                    name,
                    version,
                    f"v{current.version}" if current else "nothing",
                )
                self.last_error[key] = f"v{version}: {type(exc).__name__}: {exc}"
                counts["failed"] += 1
                continue
            self.models[key] = model  # one reference assignment: requests in flight keep the old object
            self._remember(name, arm, version)
            self.last_error.pop(key, None)
            counts["swapped"] += 1
            log.info("serving %s v%s as %s (was %s)", name, version, arm, f"v{current.version}" if current else "none")
        return counts

    def _load(self, name: str, version: str) -> LoadedModel:
        import lightgbm as lgb

        from ml.models import recsys

        folder = self.stores.serving_model_dir(name) / version
        meta_path = folder / "meta.json"
        if meta_path.exists():  # versions are immutable: the disk copy is the same model
            meta = json.loads(meta_path.read_text())
            if meta.get("family", "lightgbm") != "lightgbm":
                return LoadedModel(name, version, meta["trained_on"], [], None, recommender=recsys.load(folder))
            booster = lgb.Booster(model_file=str(folder / "model.txt"))
            return LoadedModel(name, version, meta["trained_on"], meta["features"], booster)
        mv = registry.client(self.settings).get_model_version(name, version)
        family = version_family(mv)
        if family != "lightgbm":
            download_family(name, version, folder)
            model = LoadedModel(name, version, mv.tags.get("trained_on", ""), [], None, recommender=recsys.load(folder))
            atomic.write_json(
                meta_path, {"name": name, "version": version, "trained_on": model.trained_on, "family": family}
            )
            return model
        booster = load_booster(name, version, self.settings)
        features = version_features(mv) or []
        if booster.num_feature() != len(features):
            raise ValueError(
                f"{name} v{version}: the model takes {booster.num_feature()} features, its tag lists {len(features)}"
            )
        model = LoadedModel(name, version, mv.tags.get("trained_on", ""), features, booster)
        with atomic.replacing(folder / "model.txt") as tmp:
            booster.save_model(str(tmp))
        atomic.write_json(
            meta_path, {"name": name, "version": version, "trained_on": model.trained_on, "features": features}
        )
        return model

    def _remember(self, name: str, arm: str, version: str) -> None:
        atomic.write_json(self.stores.serving_model_dir(name) / f"{arm}.json", {"version": version, "at": time.time()})

    def _from_disk(self, name: str, arm: str) -> LoadedModel | None:
        try:
            version = json.loads((self.stores.serving_model_dir(name) / f"{arm}.json").read_text())["version"]
            return self._load(name, version)
        except (FileNotFoundError, KeyError, ValueError):
            return None
        except Exception:
            log.exception("could not load the disk copy of %s (%s)", name, arm)
            return None


def registry_aliases(settings: Settings) -> dict[str, dict[str, str]]:
    """Every registered model's aliases (name -> alias -> version), in one paged listing.

    Raises:
        MlflowUnavailable: the registry could not be asked (connection refused, timeout, locked store).
    """
    out: dict[str, dict[str, str]] = {}
    try:
        c = registry.client(settings)
        token = None
        while True:
            page = c.search_registered_models(max_results=1000, page_token=token)
            for m in page:
                out[m.name] = {a: str(v) for a, v in (m.aliases or {}).items()}
            token = page.token
            if not token:
                return out
    except Exception as exc:
        raise MlflowUnavailable(f"{type(exc).__name__}: {exc}") from None
