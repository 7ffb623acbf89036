"""The registry as an attacker with MLflow access meets it: a pickle behind a champion alias,
another tenant's model registered under a tenant's name, an alias moved around the platform.

The serving API and the gate load only LightGBM text and the classic families' arrays, from a
version that belongs to the tenant, behind an alias the audit log says the platform moved.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from ml.models import audit, registry
from ml.models.champion import UntrustedModel, load_champion
from tests.served import running_api
from tests.serving.test_api import _users


class _Marker:
    """Unpickling this creates a file: a harmless proof that code from the registry ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _mlmodel(model_class: str, data: str) -> dict:
    return {
        "flavors": {
            "lightgbm": {"data": data, "model_class": model_class, "lgb_version": "4.7.0"},
            "python_function": {"loader_module": "mlflow.lightgbm", "data": data, "python_version": "3.11"},
        },
        "mlflow_version": "3.17.2",
    }


FAKES = {  # what an attacker uploads: a pickled sklearn model, and a pickle posing as a Booster's text
    "pickled_classifier": (_mlmodel("lightgbm.sklearn.LGBMClassifier", "model.pkl"), "model.pkl"),
    "pickle_as_booster": (_mlmodel("lightgbm.basic.Booster", "model.lgb"), "model.lgb"),
}


def _plant(settings, tenant: str, fake: str, marker: Path) -> str:
    """Register a fake version of ``recommender.<tenant>`` as someone with MLflow access could: a run
    tagged as the tenant's, its files a pickle, the version's tags copied from the champion."""

    mlmodel, data = FAKES[fake]
    folder = settings.home / f"fake-{fake}" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (folder / data).write_bytes(pickle.dumps(_Marker(marker)))
    champ = registry.version_by_alias(f"recommender.{tenant}", "champion", settings)
    c = registry.client(settings)
    run = c.create_run(
        registry.experiment_id("recommender", settings), tags={"tenant_id": tenant, "kind": "recommender"}
    )
    c.log_artifacts(run.info.run_id, str(folder), "model")
    c.set_terminated(run.info.run_id)
    tags = {k: v for k, v in champ.tags.items() if k not in ("family", "run_id")}
    mv = c.create_model_version(
        f"recommender.{tenant}", f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    return str(mv.version)


def test_mlflows_own_loader_would_run_the_planted_pickle(served_world, tmp_path):
    """The fake is a real exploit: MLflow's LightGBM loader unpickles it (so the tests below can fail)."""
    import mlflow.lightgbm

    settings, _ = served_world
    marker = tmp_path / "ran"
    version = _plant(settings, "globex", "pickled_classifier", marker)
    try:
        mlflow.lightgbm.load_model(f"models:/recommender.globex/{version}")
    except Exception:  # the marker is made while unpickling, before the object is used
        pass
    assert marker.exists()


@pytest.mark.parametrize("fake", sorted(FAKES))
def test_a_pickle_behind_the_champion_alias_is_never_loaded(served_world, tmp_path, fake):
    settings, keys = served_world
    marker = tmp_path / "ran"
    champ = registry.version_by_alias("recommender.globex", "champion", settings)
    version = _plant(settings, "globex", fake, marker)
    with running_api(settings) as api:
        registry.promote("recommender", "globex", version, "test: an operator promotes a planted version", settings)
        try:
            with pytest.raises(UntrustedModel, match="not a LightGBM|not a LightGBM Booster"):
                load_champion("recommender", "globex", settings)  # the gate's, batch scoring's and monitoring's way in
            detail = api.wait_ready(check=lambda b: "globex.recommender.champion" in b["model_errors"])
            assert "UntrustedModel" in detail["model_errors"]["globex.recommender.champion"]
            assert detail["models"]["globex.recommender.champion"] == str(champ.version)
        finally:
            registry.promote("recommender", "globex", champ.version, "test: back to the real champion", settings)
    assert not marker.exists(), "code from the registry ran"


def _own_files_version(settings, kinds: list[str], not_tenant: str):
    """A champion of another tenant whose files its own run made (not the global model's)."""
    for kind in kinds:
        for tenant in ("globex", "initech"):
            mv = registry.version_by_alias(f"{kind}.{tenant}", "champion", settings)
            if mv is not None and mv.tags.get("trained_on") != "global" and tenant != not_tenant:
                return kind, tenant, mv
    raise AssertionError("the served world has no champion trained on its tenant's own data")


def test_another_tenants_model_registered_under_a_tenants_name_is_refused(served_world):
    """Another tenant's files registered as a version of acme's model, its tags and registering run
    forged as acme's, and promoted by a careless operator."""
    settings, keys = served_world
    c = registry.client(settings)
    kind, owner, theirs = _own_files_version(settings, ["recommender", "engagement"], "acme")
    acme = registry.version_by_alias(f"{kind}.acme", "champion", settings)
    acme_run = acme.tags.get("run_id") or acme.run_id
    forged = c.create_model_version(
        f"{kind}.acme", theirs.source, run_id=acme_run, tags={**theirs.tags, "tenant_id": "acme", "run_id": acme_run}
    )
    with running_api(settings) as api:
        registry.promote(kind, "acme", forged.version, "test: a careless manual promote", settings)
        try:
            with pytest.raises(UntrustedModel, match=f"files come from run .* of tenant '{owner}'"):
                load_champion(kind, "acme", settings)
            detail = api.wait_ready(check=lambda b: f"acme.{kind}.champion" in b["model_errors"])
            assert f"of tenant '{owner}'" in detail["model_errors"][f"acme.{kind}.champion"]
            assert detail["models"][f"acme.{kind}.champion"] == str(acme.version)
        finally:
            registry.promote(kind, "acme", acme.version, "test: back to acme's champion", settings)


def test_a_champion_alias_moved_outside_the_platform_is_refused_and_recorded(served_world):
    settings, keys = served_world
    c = registry.client(settings)
    champ = registry.version_by_alias("recommender.acme", "champion", settings)
    other = c.create_model_version("recommender.acme", champ.source, run_id=champ.run_id, tags=dict(champ.tags))
    user = _users(settings, "acme")[0]
    before = len(audit.entries(settings, "acme", "recommender"))
    try:
        with running_api(settings) as api:
            c.set_registered_model_alias("recommender.acme", "champion", other.version)  # REST, around the gate
            detail = api.wait_ready(check=lambda b: "acme.recommender.champion" in b["model_errors"])
            assert "moved outside" in detail["model_errors"]["acme.recommender.champion"]
            assert detail["models"]["acme.recommender.champion"] == str(champ.version)
            # training, the gate, batch scoring and monitoring use the audited version too
            assert load_champion("recommender", "acme", settings).number == str(champ.version)
            c.delete_registered_model_alias("recommender.acme", "champion")  # deleting it takes nobody down
            detail = api.wait_ready(check=lambda b: "removed" in b["model_errors"].get("acme.recommender.champion", ""))
            assert detail["models"]["acme.recommender.champion"] == str(champ.version)
            assert api.post("/v1/recommendations", keys["acme"], {"user_id": user}).status_code == 200
        with running_api(settings) as api:  # a restart while the alias is gone serves the audited version
            assert api.wait_ready()["models"]["acme.recommender.champion"] == str(champ.version)
            c.set_registered_model_alias("recommender.acme", "champion", champ.version)  # put back
            api.wait_ready(check=lambda b: "acme.recommender.champion" not in b["model_errors"])
    finally:
        c.set_registered_model_alias("recommender.acme", "champion", champ.version)
    moves = [e for e in audit.entries(settings, "acme", "recommender")[before:] if e.action == "outside_move"]
    assert [(e.actor, e.from_version, e.to_version) for e in moves][:2] == [
        ("serving", str(champ.version), str(other.version)),
        ("serving", str(champ.version), None),
    ]
