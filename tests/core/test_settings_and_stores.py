"""The core: one settings tree from the environment, store layouts, atomic writes, the control database."""

from __future__ import annotations

import os
import sqlite3
from datetime import date

import pytest
from pydantic import ValidationError

from ml.core import atomic, control_db
from ml.core.layout import Layout
from ml.core.settings import Settings, unknown_variables
from ml.core.tenants import Tenant, TenantStore


def test_settings_come_from_prefixed_variables_by_group(monkeypatch, tmp_path):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("TENANTFLOW_MONITOR_COOLDOWN_HOURS", "2.5")
    monkeypatch.setenv("TENANTFLOW_TRAIN_MIN_HISTORY_DAYS", "12")
    monkeypatch.setenv("TENANTFLOW_SERVE_PORT", "9001")
    s = Settings()
    assert s.home == (tmp_path / "h").resolve()
    assert (s.monitor.cooldown_hours, s.train.min_history_days, s.serve.port) == (2.5, 12, 9001)
    assert s.monitor.daily_budget == 10 and s.landing.settle_seconds == 5.0, "defaults stay"
    monkeypatch.setenv("TENANTFLOW_TRAIN_THREADS", "two")
    with pytest.raises(ValidationError, match="threads"):
        Settings()
    monkeypatch.delenv("TENANTFLOW_TRAIN_THREADS")
    # MLflow's credential cache: a revoked password must stop working within minutes, not a year
    monkeypatch.setenv("TENANTFLOW_MLFLOW_AUTH_CACHE_SECONDS", "31536000")
    with pytest.raises(ValidationError, match="auth_cache_seconds"):
        Settings()


def test_unknown_tenantflow_variables_are_named():
    env = {
        "TENANTFLOW_HOME": "x",
        "TENANTFLOW_MONITOR_COOLDOWN_HOURS": "1",
        "TENANTFLOW_MONTOR_COOLDOWN_HOURS": "1",
        "TENANTFLOW_ENV": "production",
        "TENANTFLOW_MIN_HISTORY_DAYS": "12",
        "TENANTFLOW_LAKE": "/srv/lake",  # exported by `tenantflow env`, read by people's duckdb
        "PATH": "/bin",
    }
    warnings = unknown_variables(env)
    assert [w.split()[0] for w in warnings] == [
        "TENANTFLOW_ENV",
        "TENANTFLOW_MIN_HISTORY_DAYS",
        "TENANTFLOW_MONTOR_COOLDOWN_HOURS",
    ]
    assert "now TENANTFLOW_TRAIN_MIN_HISTORY_DAYS" in warnings[1]
    assert "a typo?" in warnings[2]


def test_renamed_variables_point_at_settings_that_exist():
    from ml.core.settings import RENAMED, setting_variables

    assert set(RENAMED.values()) <= setting_variables()
    assert not set(RENAMED) & setting_variables()


def test_layout_validates_every_segment_and_knows_each_store(tmp_path):
    stores = Layout(tmp_path)
    day = date(2026, 11, 20)
    assert stores.lake.day_dir("eu", "acme", day) == tmp_path / "lake/region=eu/tenant=acme/date=2026-11-20"
    assert stores.warehouse_file("us/silo_initech") == tmp_path / "warehouse/region=us/silo_initech.duckdb"
    assert (
        stores.snapshots.snapshot_dir("eu", "acme", "0123abcd") == tmp_path / "snapshots/region=eu/tenant=acme/0123abcd"
    )
    for bad in (("../eu", "acme"), ("eu", "acme/../../x"), ("eu", "ACME")):
        with pytest.raises(ValueError):
            stores.landing.day_dir(*bad, day)
    with pytest.raises(ValueError):
        stores.snapshots.snapshot_dir("eu", "acme", "../../etc")
    with pytest.raises(ValueError):
        stores.warehouse_file("eu/silo_../x")
    (stores.lake.day_dir("eu", "acme", day)).mkdir(parents=True)
    assert stores.lake.days("eu", "acme") == [day] and stores.lake.days("eu", "nobody") == []
    assert stores.lake.day_of(stores.lake.day_dir("eu", "acme", day)) == day


def test_atomic_writes_leave_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a" / "f.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["f.json"], "no temporary file is left behind"
    atomic.write_bytes(target, b"new", durable=True)
    assert target.read_bytes() == b"new"
    staged = atomic.staging_dir(tmp_path / "snaps")
    (staged / "x").write_text("1")
    assert atomic.commit_dir(staged, tmp_path / "snaps" / "id1") is True
    again = atomic.staging_dir(tmp_path / "snaps")
    assert atomic.commit_dir(again, tmp_path / "snaps" / "id1") is False and not again.exists()


def test_the_control_database_is_migrated_once_in_order(settings):
    TenantStore(settings).add(Tenant("acme", "eu"))
    path = settings.stores.control_db
    with sqlite3.connect(path) as con:
        (version,) = con.execute("pragma user_version").fetchone()
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert version == max(n for n, _, _ in control_db.migrations("control"))
    assert {"tenants", "api_keys", "audit_log", "monitor_policies", "retrain_requests", "traffic_splits"} <= tables
    assert "serving_splits" not in tables


def test_a_home_from_before_migrations_is_upgraded_in_place(tmp_path, monkeypatch):
    """An older home kept its tables in registry.sqlite, created ad hoc; its rows survive the upgrade."""
    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "registry.sqlite") as con:
        con.executescript(control_db.migrations("control")[0][2])  # the tables as they were
        con.execute(
            "insert into tenants values ('acme', 'Acme', 'eu', 'pool', 1, '2026-01-01', 'recommender,churn', 1, 1)"
        )
        # quotas stored negative or fractional before the checks (refusing every event and request, as 0 does;
        # admitting 2 events a day, as 2 does)
        con.execute("insert into tenants values ('paused', 'Paused', 'eu', 'pool', 1, '2026-01-01', '', -3, -1)")
        con.execute("insert into tenants values ('halves', 'Halves', 'eu', 'pool', 1, '2026-01-01', '', 2.5, 7.9)")
        con.execute("insert into tenants values ('wordy', 'Wordy', 'eu', 'pool', 1, '2026-01-01', '', 'lots', 'x')")
        con.execute("insert into serving_splits values ('acme', 'recommender', 10, '2026-01-01')")
    monkeypatch.setenv("TENANTFLOW_HOME", str(home))
    settings = Settings()
    acme = TenantStore(settings).get("acme")
    assert acme.model_kinds == () and acme.uses("engagement"), "the old default list means every kind"
    paused = TenantStore(settings).get("paused")
    assert (paused.quota_events_per_day, paused.quota_requests_per_minute) == (0, 0)
    halves = TenantStore(settings).get("halves")
    assert (halves.quota_events_per_day, halves.quota_requests_per_minute) == (2, 7)
    wordy = TenantStore(settings).get("wordy")  # no number: the platform's defaults (it judged nothing before)
    assert (wordy.quota_events_per_day, wordy.quota_requests_per_minute) == (5_000_000, 6_000)
    with control_db.connect(settings) as con:
        assert con.execute("select challenger_percent from traffic_splits").fetchall() == [(10.0,)]
    assert not (home / "registry.sqlite").exists() and (home / "control.sqlite").exists()


def test_secrets_are_created_private(tmp_path):
    from ml.core.secret_files import generated

    secret = generated(tmp_path / "s" / ".jwt")
    assert len(secret) >= 32 and oct(os.stat(tmp_path / "s" / ".jwt").st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "s").st_mode & 0o777) == "0o700"
    assert generated(tmp_path / "s" / ".jwt") == secret


def test_a_warehouse_build_gets_its_share_of_the_machines_memory_and_an_out_of_memory_failure_says_what_to_do(
    monkeypatch, tmp_path
):
    """DuckDB's memory limit follows the build's share of the cores (two builds at once on two cores: half each);
    the variable overrides it; a real DuckDB out-of-memory failure gets the hint, any other failure none."""
    import duckdb

    from ml.core import warehouse

    monkeypatch.delenv(warehouse.MEMORY_LIMIT_VARIABLE, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    one, both = warehouse.duckdb_memory_limit(1), warehouse.duckdb_memory_limit(2)
    assert 2 * int(one.removesuffix("MiB")) in (int(both.removesuffix("MiB")) - 1, int(both.removesuffix("MiB")))
    assert int(both.removesuffix("MiB")) * 2**20 <= 0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    duckdb.connect(config={"memory_limit": one}).close()  # a size DuckDB reads
    monkeypatch.setenv(warehouse.MEMORY_LIMIT_VARIABLE, "20MB")
    assert warehouse.duckdb_memory_limit(1) == "20MB"
    con = duckdb.connect(config={"memory_limit": "20MB", "threads": 1})
    with pytest.raises(duckdb.OutOfMemoryException) as failed:
        con.execute("select list(i) from range(20000000) t(i)").fetchall()
    hint = warehouse.out_of_memory_hint(str(failed.value), "20MB")
    assert "memory limit (20MB)" in hint and warehouse.MEMORY_LIMIT_VARIABLE in hint
    assert warehouse.out_of_memory_hint("Binder Error: column x not found", "20MB") == ""
    # a warehouse's reads (the checks, the publish's sorted copies) are held to the same share
    with warehouse.connect(tmp_path / "pool.duckdb", threads=1) as con, pytest.raises(duckdb.OutOfMemoryException):
        con.execute("select list(i) from range(20000000) t(i)").fetchall()
