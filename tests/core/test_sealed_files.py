"""A silo tenant's sealed files (ml.core.sealed_files) and the writers that need its key: the
webhook and the API's prediction log answer a missing key without writing anything in plain."""

from __future__ import annotations

import json
import os
from datetime import date

import pytest

from ml.core import prediction_log, sealed_files
from ml.core.settings import get_settings
from ml.core.tenant_keys import silo_key
from ml.core.tenant_parquet import TenantKeyError
from ml.core.tenants import Tenant, TenantStore
from ml.serving import prediction_log as api_log
from ml.serving.webhook import EventSink, TenantKeyUnavailable


def _tenants(settings) -> None:
    store = TenantStore(settings)
    store.add(Tenant("initech", "us", isolation="silo", share_data=False))
    store.add(Tenant("acme", "eu"))


def test_a_sealed_file_keeps_name_and_time_opens_only_whole_and_with_its_key(settings):
    _tenants(settings)
    path = settings.home / "drop.csv"
    path.write_bytes(b"event_id,user_id\ne1,u-secret-1\n" * 50_000)  # > one 1 MiB segment
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    plain = path.read_bytes()
    key = sealed_files.writer_key(settings, "initech")
    assert key is not None and sealed_files.writer_key(settings, "acme") is None, "a pool tenant's stay plain"
    changed = path.stat()
    os.utime(path, ns=(1_000_000_000, 2_000_000_001))  # not as the caller last saw it: left alone
    assert not sealed_files.seal_file(path, key, changed) and path.read_bytes() == plain
    assert sealed_files.seal_file(path, key) and not sealed_files.seal_file(path, key)
    sealed = path.read_bytes()
    assert sealed.startswith(sealed_files.MAGIC) and b"u-secret-1" not in sealed
    assert path.stat().st_mtime_ns == 2_000_000_001
    assert sealed_files.read_bytes(path, settings, "initech") == plain
    assert sealed_files.content_sha256(path, settings, "initech") == sealed_files.content_sha256(
        settings.home / "drop.csv", settings, "initech"
    )
    path.write_bytes(sealed[:-100])  # cut short
    with pytest.raises(TenantKeyError, match=r"tenant initech: .*drop\.csv does not open .*cut short"):
        sealed_files.read_bytes(path, settings, "initech")
    path.write_bytes(sealed)
    other = settings.home / "other.csv"
    other.write_bytes(sealed_files.seal_bytes(b"x", sealed_files.sealing_key("0" * 64)))
    with pytest.raises(TenantKeyError, match="restore the key it was sealed with"):
        sealed_files.read_bytes(other, settings, "initech")


def test_a_plain_log_file_of_a_silo_tenant_is_rewritten_sealed(settings):
    _tenants(settings)
    path = settings.stores.prediction_log.day_dir("us", "initech", date(2026, 11, 1)) / "part-1.jsonl"
    path.parent.mkdir(parents=True)
    records = [{"user_id": "u-secret-2", "items": ["a"]}, {"user_id": "u3", "items": ["b"]}]
    path.write_bytes(prediction_log.encode(records, None))
    prediction_log.rewrite_records(path, records[1:], settings, "initech")
    assert sealed_files.is_sealed(path) and prediction_log.read_records(path, settings, "initech") == records[1:]
    path.write_bytes(path.read_bytes()[:-10])  # the API wrote it: no tenant can send it again
    with pytest.raises(TenantKeyError, match=r"tenant initech: .*part-1\.jsonl does not open") as damaged:
        prediction_log.read_records(path, settings, "initech")
    assert "from a backup, or delete it" in str(damaged.value) and "send" not in str(damaged.value)


@pytest.fixture
def keyless(settings, monkeypatch):
    """initech (silo) with a key provider that has no key for it and never makes one."""
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", "{}")
    s = get_settings()
    _tenants(s)
    return s


def _files(root) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_webhook_writes_nothing_for_a_silo_tenant_without_its_key(keyless):
    sink = EventSink(keyless, flush_ms=1)
    try:
        event = {"event_id": "e1", "user_id": "u-secret-3", "item_id": "i1", "event_type": "click"}
        refused = sink.submit("initech", "us", 1000, [event], silo=True)
        accepted = sink.submit("acme", "eu", 1000, [{**event, "tenant_id": "acme"}])
        with pytest.raises(TenantKeyUnavailable, match="tenant initech"):
            refused.result(timeout=10)
        assert accepted.result(timeout=10)[0]["status"] == "accepted", "another tenant of the group is not hurt"
    finally:
        sink.close()
    assert _files(keyless.stores.landing.tenant_dir("us", "initech")) == []
    assert silo_key(keyless, "initech") is None


def test_the_prediction_log_keeps_a_keyless_silo_tenants_records_in_memory_only(keyless, monkeypatch):
    monkeypatch.setattr(api_log, "MAX_KEPT", 2)
    plog = api_log.PredictionLog(keyless, interval=3600)
    at = "2026-11-01T09:00:00+00:00"
    for i in range(3):
        plog.append({"at": at, "tenant_id": "initech", "region": "us", "user_id": f"u-secret-{i}"})
    plog.append({"at": at, "tenant_id": "acme", "region": "eu", "user_id": "u1"})
    assert plog.flush() == 1  # acme's; initech's kept, the oldest beyond two dropped
    assert [r["user_id"] for r in plog.buffer] == ["u-secret-1", "u-secret-2"]
    assert plog.flush() == 0 and len(plog.buffer) == 2, "the key is not asked again within a minute"
    plog.stopped.set()
    assert _files(keyless.stores.prediction_log.tenant_dir("us", "initech")) == []
    [acme] = prediction_log.files(keyless, "eu", "acme")
    assert json.loads(acme.read_text())["user_id"] == "u1"
