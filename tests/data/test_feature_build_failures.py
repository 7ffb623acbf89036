"""A feature build that fails part-way: each tenant is reported unhealthy with what failed and what to do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ml.core import warehouse
from ml.core.tenants import TenantStore
from ml.data import features
from ml.data.feature_checks import read_health
from ml.data.generate import generate
from ml.data.generate.config import TenantSpec
from ml.data.ingest.run import ingest_tenants
from ml.models.kinds import online_marts
from tests.world import register, small_config


def test_a_first_build_that_runs_out_of_memory_reports_unhealthy_tenants_with_the_hint(settings, monkeypatch):
    """The file's first build, with too little memory for DuckDB: its models fail, so neither the
    marts nor the tenants' windows exist. The checks say which marts were never built and the
    models' out-of-memory hint, publish nothing, and do not fail on the missing tables; a run that
    cannot start says what to do too."""
    cfg = small_config(days=4, specs=[TenantSpec("acme", "eu", users=300, items=80, fmt="csv")])
    register(settings, cfg, silo=())
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    monkeypatch.setenv(warehouse.MEMORY_LIMIT_VARIABLE, "8MB")
    [wh] = warehouse.warehouses(TenantStore(settings).list())
    result = features.build_and_check_warehouse(wh, online_marts(), settings, threads=1)
    failed = {n["node"].split(".")[-1]: n["status"] for n in result["failed_nodes"]}
    assert failed.get("int_tenant_windows") == failed.get("user_features") == "skipped", failed
    health = result["health"]["acme"]
    assert not health["healthy"] and result["published"] == {}
    problems = health["health_problems"]
    errors = [p for p in problems if p.startswith("dbt model ")]
    assert errors and all(f"memory limit (8MB): set {warehouse.MEMORY_LIMIT_VARIABLE} higher" in p for p in errors)
    [skipped] = [p for p in problems if "dbt models skipped, as a model they read failed" in p]
    assert "int_tenant_windows" in skipped and "user_features" in skipped
    assert "mart user_features was never built on this warehouse" in problems
    assert read_health(settings, "acme") == health
    # too little for dbt to start: the run's error says the same
    monkeypatch.setenv(warehouse.MEMORY_LIMIT_VARIABLE, "1MB")
    with pytest.raises(RuntimeError, match=rf"memory limit \(1MB\): set {warehouse.MEMORY_LIMIT_VARIABLE} higher"):
        features.build_warehouse(wh, settings, threads=1)


def test_models_skipped_after_a_failed_test_name_the_test():
    """dbt skips the models below a failed (unit) test too: the line names the test, not a model that never failed."""
    problems = features._failed_models(
        [
            {
                "node": "unit_test.tenantflow.int_item_activity__daily.an_orders_charge_lines_are_no_item",
                "status": "fail",
            },
            {"node": "test.tenantflow.not_null_item_features_item_id.898974a7f6", "status": "skipped"},
            {"node": "model.tenantflow.item_features", "status": "skipped"},
        ]
    )
    assert problems == [
        "1 dbt models skipped, as a model they read failed, or a test upstream (an_orders_charge_lines_are_no_item): "
        "item_features"
    ]
