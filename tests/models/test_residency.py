"""Residency: one global model per region, and no tenant's model learns from another region's data
unless its registry entry opted in (tests/models/conftest.py: eu and us tenants, young opted in to us).
"""

from __future__ import annotations

import pytest

from ml.core.errors import RegistryError
from ml.core.tenants import TenantStore
from ml.data import snapshots
from ml.models import registry
from ml.models.champion import UntrustedModel, check_owner
from ml.models.kinds import get_kind, kind_names


def _lineage(c, mv) -> set[str]:
    """Every tenant whose data reached a version: its own (unless it is a global model's files as
    they are), and the training tenants of the global version it is or started from."""
    tags = mv.tags
    tenants = set() if tags["trained_on"] == "global" else {tags["tenant_id"]}
    if tags.get("global_version"):
        g = c.get_model_version(tags["global_model"], tags["global_version"])
        tenants |= set(c.get_run(g.run_id).data.params["training_tenants"].split(","))
    return tenants


def test_a_us_tenants_models_hold_no_eu_data(world):
    settings, results = world
    c = registry.client(settings)
    regions = {t.tenant_id: t.region for t in TenantStore(settings).list()}
    for tid in ("initech", "hooli"):
        for kind in kind_names():
            versions = c.search_model_versions(f"name = '{kind}.{tid}'")
            assert versions or results[(tid, kind)].get("skipped"), (kind, tid, results[(tid, kind)])
            for mv in versions:
                assert {regions[t] for t in _lineage(c, mv)} == {"us"}, (mv.name, mv.version, _lineage(c, mv))
                assert mv.tags.get("global_model") in ("", f"{kind}.global.us"), mv.tags
        # initech, a silo, never trains a global model; the model fine-tuned for it from the us
        # global model competed on its holdout
        metrics = c.get_run(results[(tid, "recommender")]["run_id"]).data.metrics
        assert any(k.startswith("candidate.fine_tuned.") for k in metrics), sorted(metrics)


def test_an_opted_in_tenant_is_served_by_that_regions_global_model_and_still_trains_its_own(world):
    settings, results = world
    c = registry.client(settings)
    young = TenantStore(settings).get("young")
    assert (young.region, young.global_model_region) == ("eu", "us")
    for kind in kind_names():
        mv = c.get_model_version(f"{kind}.young", results[("young", kind)]["version"])
        own_baseline = mv.tags["trained_on"] == "tenant" and mv.tags["family"] == get_kind(kind).baseline_name
        assert mv.tags["region"] == "eu" and (own_baseline or mv.tags["global_model"] == f"{kind}.global.us"), mv.tags
    # its data trains its own region's global models only (where its ten days hold training rows)
    snap = snapshots.latest(settings, "eu", "young")
    for kind in kind_names():
        members = {
            region: c.get_run(results[(f"global.{region}", kind)]["run_id"]).data.params["training_tenants"].split(",")
            for region in ("eu", "us")
        }
        assert "young" not in members["us"]
        assert ("young" in members["eu"]) == (snap.rows[get_kind(kind).mart] > 0), (kind, members)


def test_a_version_claiming_another_regions_global_files_or_none_is_refused(world):
    """A us tenant's version that points at eu global files (tagged as the us model, or as the
    region-less global model of earlier releases) is never loaded."""
    settings, results = world
    c = registry.client(settings)
    eu = c.get_model_version("recommender.global.eu", results[("global.eu", "recommender")]["version"])
    run = c.create_run(
        registry.experiment_id("recommender", settings), tags={"tenant_id": "hooli", "kind": "recommender"}
    )
    for claimed, match in (
        ("recommender.global.us", "files come from run .* 'global.eu'"),
        ("recommender.global", "no region"),
    ):
        tags = {"tenant_id": "hooli", "trained_on": "global", "global_model": claimed, "global_version": eu.version}
        mv = c.create_model_version("recommender.hooli", eu.source, run_id=run.info.run_id, tags=tags)
        with pytest.raises(UntrustedModel, match=match):
            check_owner(c.get_model_version("recommender.hooli", mv.version), c)
    c.set_terminated(run.info.run_id)


def test_the_global_model_is_named_by_its_region():
    assert registry.model_name("churn", registry.global_owner("eu")) == "churn.global.eu"
    assert registry.owner_region("global.us") == "us" and registry.is_global("global.us")
    with pytest.raises(RegistryError, match="one per region|per region"):
        registry.model_name("churn", "global")
    with pytest.raises(Exception, match="invalid region"):
        registry.model_name("churn", "global.EU/x")
