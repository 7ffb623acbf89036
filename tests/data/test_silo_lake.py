"""A silo tenant's lake and quarantine are Parquet encrypted with its key (issue 15, point 6):
written so by ingestion, read so by deduplication, dbt, status and erasure; a rerun that rebuilds
the same rows changes no byte; files written before encryption are sealed by the next build."""

from __future__ import annotations

import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from ml.core import tenant_parquet
from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect, warehouses
from ml.data.features import build_warehouse
from ml.data.generate import generate
from ml.data.ingest.run import ingest_tenants
from ml.ops.status import status
from tests.world import register, small_config


def _files(settings, tenant_id: str):
    return sorted(settings.stores.lake.tenant_dir("us", tenant_id).rglob("part-0.parquet"))


def test_a_silo_lake_is_encrypted_rebuilt_without_change_and_read_by_dbt_and_status(settings):
    cfg = small_config(days=6)
    register(settings, cfg)  # initech is the silo
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["initech", "acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    files = _files(settings, "initech")
    users = {
        u
        for f in files
        for u in tenant_parquet.read_table(f, settings, "initech", ["user_id"])["user_id"].to_pylist()
        if u  # item_published events have none
    }
    assert len(files) >= 5 and len(users) > 20
    for f in files:
        raw = f.read_bytes()
        assert raw[:4] == b"PARE" and not [u for u in users if u.encode() in raw], f"{f}: plain ids"
    with pytest.raises(OSError):
        pq.read_schema(files[0])  # without the key: not even the schema
    assert not tenant_parquet.is_encrypted(next(settings.stores.lake.tenant_dir("eu", "acme").rglob("part-0.parquet")))

    before = {f: f.read_bytes() for f in files}
    [again] = ingest_tenants(["initech"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    assert {f: f.read_bytes() for f in _files(settings, "initech")} == before, "the same rows: the same bytes"
    assert again["changed_dates"] == [], again

    # a partition written before encryption (plain) is sealed by the next build, which reads it
    legacy = files[0]
    pq.write_table(tenant_parquet.read_table(legacy, settings, "initech"), legacy)
    assert not tenant_parquet.is_encrypted(legacy)
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "us/silo_initech")
    assert not build_warehouse(wh, settings)["failed_nodes"]
    assert tenant_parquet.is_encrypted(legacy)
    row = next(r for r in status(settings) if r["tenant_id"] == "initech")
    assert row["lake_rows"] > 0
    with connect(wh.path(settings), read_only=True) as con:  # the lake view, as scoring and monitoring read it
        assert con.execute("select count(*) from stg_lake__events").fetchone() == (row["lake_rows"],)
    assert row["events_in"] == row["lake_rows"] + sum(row["quarantined"].values()) + row["duplicates_dropped"]


def test_a_lost_key_is_never_replaced_and_a_wrong_key_is_one_tenants_problem(settings, monkeypatch):
    cfg = small_config(days=2)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["initech", "acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=initech.key"
    kept = key_file.read_bytes()
    key_file.unlink()  # lost: a writer must not start a new key the lake cannot be read with
    with pytest.raises(tenant_parquet.TenantKeyError, match=r"tenant initech: .*no key.*restore the key"):
        tenant_parquet.writer_key(settings, "initech")
    assert not key_file.exists()
    key_file.write_bytes(kept)
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"initech": "0" * 64}))
    rows = {r["tenant_id"]: r for r in status(get_settings())}  # the wrong key: initech's row says so
    assert rows["acme"]["lake_rows"] > 0
    assert any("lake not readable" in p and "does not decrypt" in p for p in rows["initech"]["health_problems"])
