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
from ml.models import audit, registry
from ml.models.champion import (
    download_family,
    family_reader,
    holds_booster,
    load_booster,
    version_family,
    version_features,
)
from ml.models.kinds.base import NotServable

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
        """Indices of this model's features among a snapshot's columns (cached per column layout).

        Raises:
            NotServable: a feature of the model is not among ``columns`` (``model_features_missing``).
        """
        key = (",".join(columns), id(columns))
        idx = self._index.get(key)
        if idx is None:
            missing = [f for f in self.features if f not in columns]
            if missing:  # a model trained on features since renamed or dropped (the API's 503)
                raise NotServable(
                    "model_features_missing",
                    f"{self.name} v{self.version} needs features {missing} that the published features lack: "
                    "retrain the tenant (tenantflow train --tenant <id> --force)",
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
        self.refused: set[tuple[tuple[str, str, str], str | None]] = set()  # outside moves already audited

    def get(self, tenant_id: str, kind: str, arm: str) -> LoadedModel | None:
        return self.models.get((tenant_id, kind, arm))

    def apply(
        self, wanted: Iterable[tuple[str, str, str]], aliases: dict[str, dict[str, str]] | MlflowUnavailable
    ) -> dict[str, int]:
        """Load what moved, given the registry's aliases (or why MLflow could not be asked).

        An alias is followed only where the audit log says the platform moved it
        (:func:`ml.models.registry.audited_version`); one moved around the platform's promote and
        rollback is refused and recorded (``outside_move``), and the audited version is served.

        Returns counts: swapped, unchanged, failed, unavailable, removed, refused.
        """
        counts = {"swapped": 0, "unchanged": 0, "failed": 0, "unavailable": 0, "removed": 0, "refused": 0}
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
            counts[self._apply_one(tenant_id, kind, arm, aliases)] += 1
        return counts

    def _apply_one(self, tenant_id: str, kind: str, arm: str, aliases: dict[str, dict[str, str]]) -> str:
        """Follow one alias (when the audit log agrees it was the platform that moved it); the count it adds to."""
        key = (tenant_id, kind, arm)
        name = registry.model_name(kind, tenant_id)
        version = aliases.get(name, {}).get(arm)
        current = self.models.get(key)
        if current is not None and current.version == version:
            self.last_error.pop(key, None)
            return "unchanged"
        audited = registry.audited_version(kind, tenant_id, arm, self.settings)
        refusal = None
        if version != audited:
            refusal = self._refuse_outside_move(tenant_id, kind, arm, version, audited, current)
            if current is not None and current.version == audited:
                return "refused"
            version = audited  # e.g. a restart after the move: load the version the platform put there
        if version is None:
            if current is None:
                return "unchanged"
            del self.models[key]  # the alias was removed on purpose (e.g. no challenger any more)
            return "removed"
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
            return "failed"
        self.models[key] = model  # one reference assignment: requests in flight keep the old object
        self._remember(name, arm, version)
        if refusal:
            self.last_error[key] = refusal
        else:
            self.last_error.pop(key, None)
        log.info("serving %s v%s as %s (was %s)", name, version, arm, f"v{current.version}" if current else "none")
        return "swapped"

    def _refuse_outside_move(
        self, tenant_id: str, kind: str, arm: str, version: str | None, audited: str | None, current: LoadedModel | None
    ) -> str:
        """An alias that is not where the platform's audited moves left it: not followed, shown, audited
        once; returns why."""
        key = (tenant_id, kind, arm)
        name = registry.model_name(kind, tenant_id)
        moved = f"v{version}" if version else "removed"
        reason = (
            f"the {arm} alias of {name} was moved outside Tenantflow's promote/rollback ({moved}; the audit log "
            f"says v{audited}); not followed, serving {f'v{current.version}' if current else f'v{audited}'}. "
            f"Move it back, or promote with `tenantflow models promote {tenant_id} {kind} VERSION`"
        )
        self.last_error[key] = reason
        if (key, version) not in self.refused:
            self.refused.add((key, version))
            log.error("tenant %s: %s", tenant_id, reason)
            audit.record(kind, tenant_id, "outside_move", audited, version, reason, self.settings, who="serving")
        return reason

    def _load(self, name: str, version: str) -> LoadedModel:
        import lightgbm as lgb

        from ml.models import recsys

        folder = self.stores.serving_model_dir(name) / version
        meta_path = folder / "meta.json"
        if meta_path.exists():  # versions are immutable: the disk copy is the same model
            meta = json.loads(meta_path.read_text())
            if not holds_booster(meta.get("family", "lightgbm")):
                recommender = recsys.load(folder, family_reader(name, self.settings))
                return LoadedModel(name, version, meta["trained_on"], [], None, recommender=recommender)
            booster = lgb.Booster(model_file=str(folder / "model.txt"))
            return LoadedModel(name, version, meta["trained_on"], meta["features"], booster)
        mv = registry.client(self.settings).get_model_version(name, version)
        family = version_family(mv)
        if not holds_booster(family):
            download_family(name, version, folder, self.settings)
            recommender = recsys.load(folder, family_reader(name, self.settings))
            model = LoadedModel(name, version, mv.tags.get("trained_on", ""), [], None, recommender=recommender)
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
