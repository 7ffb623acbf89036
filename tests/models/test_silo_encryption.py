"""A silo tenant's warehouse is an encrypted DuckDB database with the tenant's own key (kept
outside the home); pool warehouses are not. initech is the models world's silo tenant."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ml.core import tenant_keys, tenant_parquet
from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import WarehouseKeyError, connect, warehouses
from ml.data import publish, snapshots
from ml.models.kinds import online_marts
from ml.models.runs import snapshot_warehouse
from ml.ops.status import tenant_status


def _user_ids(settings, region: str, tenant_id: str) -> list[str]:
    lake = settings.stores.lake.tenant_dir(region, tenant_id)
    ids = {
        u
        for p in lake.rglob("*.parquet")
        for u in tenant_parquet.read_table(p, settings, tenant_id, ["user_id"]).column(0).to_pylist()
    }
    return sorted(u for u in ids if u)


def test_a_silo_warehouse_holds_no_plain_id_and_opens_only_with_its_key(world):
    settings, _ = world
    path = settings.stores.warehouse_file("us/silo_initech")
    ids = _user_ids(settings, "us", "initech")
    assert len(ids) > 100
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.suffix != ".lock")
    assert b"initech" not in raw and not [u for u in ids if u.encode() in raw]
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(path), read_only=True)
    with connect(path, read_only=True) as con:
        (n,) = con.execute("select count(distinct user_id) from user_features where tenant_id = 'initech'").fetchone()
    assert n > 100
    key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=initech.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and settings.home not in key_file.parents
    # a pool warehouse is not encrypted: its tenants' ids are in its bytes
    pool = settings.stores.warehouse_file("eu/pool")
    duckdb.connect(str(pool), read_only=True).close()


def test_a_wrong_key_fails_with_an_error_naming_the_tenant(world, monkeypatch):
    settings, _ = world
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"initech": "0" * 64}))
    with pytest.raises(WarehouseKeyError, match=r"tenant initech.*key"):
        connect(settings.stores.warehouse_file("us/silo_initech"), read_only=True)


def test_a_malformed_key_is_the_tenants_key_problem_and_status_goes_on(world, monkeypatch):
    """A key that is not 64 hex characters opens neither the warehouse nor the lake: the readers say
    so as a key error naming the tenant, and ``status`` reports it in the tenant's row (it raised)."""
    settings, _ = world
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"initech": "not-a-key"}))
    with pytest.raises(WarehouseKeyError, match=r"tenant initech: .*64 hex.*cannot be opened"):
        connect(settings.stores.warehouse_file("us/silo_initech"), read_only=True)
    lake = sorted(settings.stores.lake.tenant_dir("us", "initech").rglob("part-0.parquet"))[-1]
    assert tenant_parquet.is_encrypted(lake)
    with pytest.raises(tenant_parquet.TenantKeyError, match=r"tenant initech: .*64 hex"):
        tenant_parquet.read_table(lake, get_settings(), "initech")  # (the settings as the environment has them now)
    row = tenant_status(get_settings(), TenantStore(settings).get("initech"))
    assert "64 hex" in str(row), row


def test_a_plain_silo_warehouse_is_encrypted_on_its_next_write(settings):
    path = settings.stores.warehouse_file("us/silo_legacy")
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute("create table events as select 'canary-user-4711' as user_id, 'legacy' as tenant_id")
    with connect(path, read_only=True) as con:  # a reader before the next build: plain, as it was
        assert con.execute("select user_id from events").fetchall() == [("canary-user-4711",)]
    with connect(path) as con:
        assert con.execute("select user_id from events").fetchall() == [("canary-user-4711",)]
    assert b"canary-user-4711" not in path.read_bytes()
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(path), read_only=True)


def test_a_lost_key_is_never_replaced_by_a_new_one(settings):
    path = settings.stores.warehouse_file("us/silo_lost")
    path.parent.mkdir(parents=True)
    with connect(path) as con:
        con.execute("create table events as select 'canary-user-99' as user_id")
    key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=lost.key"
    key_file.unlink()
    with pytest.raises(WarehouseKeyError, match=r"tenant lost: .* has no key"):
        connect(path)  # a writer: it would have generated a key that can never open this file
    assert not key_file.exists()


class _Kms:
    """A provider of one's own (``TENANTFLOW_KEYS_PROVIDER=module:attribute``) that answers one key (``fixed``, when
    set to something else than ``""``)."""

    fixed: object = ""

    def __init__(self, settings) -> None:
        self.answer = "7" * 64 if settings.home.name == "home" else "x' (READ_ONLY); --"
        if _Kms.fixed != "":
            self.answer = _Kms.fixed

    def key(self, tenant_id: str, create: bool) -> str | None:
        return self.answer


def test_keys_live_outside_the_home_and_the_env_provider_never_makes_one(tmp_path, monkeypatch):
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="inside the home"):
        tenant_keys.FileKeys(home / "keys", home.resolve())
    monkeypatch.setenv("TENANTFLOW_HOME", str(home))
    generated = tenant_keys.silo_key(get_settings(), "acme", create=True)
    assert generated and len(generated) == 64 and generated == tenant_keys.silo_key(get_settings(), "acme")
    assert (tmp_path / "home-keys" / "tenant=acme.key").exists()
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"acme": "not-a-key"}))
    assert tenant_keys.silo_key(get_settings(), "initech") is None
    with pytest.raises(tenant_keys.MissingKeyError, match="tenant initech"):
        tenant_keys.silo_key(get_settings(), "initech", create=True)
    with pytest.raises(ValueError, match="64 hex"):
        tenant_keys.silo_key(get_settings(), "acme")
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "tests.models.test_silo_encryption:_Kms")
    assert tenant_keys.silo_key(get_settings(), "acme") == "7" * 64
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "other"))
    with pytest.raises(ValueError, match="64 hex"):  # never pasted into an ATTACH statement
        tenant_keys.silo_key(get_settings(), "acme")
    monkeypatch.setenv("TENANTFLOW_HOME", str(home))
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"acme": generated + "\n"}))  # a mounted secret's newline
    with pytest.raises(ValueError, match="64 hex"):  # DuckDB would take it as it is: not the key
        tenant_keys.silo_key(get_settings(), "acme")
    for answer, error in ((generated.encode(), tenant_keys.KeyProviderError), (None, tenant_keys.MissingKeyError)):
        monkeypatch.setattr(_Kms, "fixed", answer)  # a KMS client's bytes; none when asked to make one (no plain write)
        monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "tests.models.test_silo_encryption:_Kms")
        with pytest.raises(error, match="tenant acme: the key provider 'tests.models"):
            tenant_keys.silo_key(get_settings(), "acme", create=True)


def test_a_silo_tenants_snapshots_and_published_features_are_encrypted_and_named_by_content(world, monkeypatch):
    """initech's training snapshot and published features are Parquet encrypted with its key (no id
    in their bytes, nothing without the key), read back through the platform, and their content ids
    are stable (encrypted bytes change on every write); acme's (pool) stay plain Parquet."""
    settings, _ = world
    ids = _user_ids(settings, "us", "initech")
    snap = snapshots.latest(settings, "us", "initech")
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "us/silo_initech")
    with connect(wh.path(settings), read_only=True) as con:  # the models world trains; it does not publish
        publish.publish_tenant(con, settings, "us", "initech", online_marts())
    meta = publish.current(settings, "us", "initech")
    published = Path(meta["path"])
    served = publish.PublishedFeatures.load(meta, online_marts(), settings)  # as the API loads them
    assert served.tables["user_features"].keys.size > 100 and served.lists
    files = sorted(snap.path.glob("*.parquet")) + sorted(published.glob("*.parquet"))
    assert len(files) >= 6 and any(f.name.startswith("reference_") for f in files)
    for f in files:
        raw = f.read_bytes()
        assert raw[:4] == raw[-4:] == b"PARE", f
        assert b"initech" not in raw and not [u for u in ids if u.encode() in raw], f"{f} holds a plain id"
    with pytest.raises(OSError):  # pyarrow without the key: not even the schema
        pq.read_schema(snap.table("ranking_examples"))
    frame = snap.read(snap.table("ranking_examples"))
    assert (frame["tenant_id"] == "initech").all() and len(frame) == snap.rows["ranking_examples"]
    assert not tenant_parquet.is_encrypted(snapshots.latest(settings, "eu", "acme").table("ranking_examples"))

    again = snapshot_warehouse(wh, ["initech"], settings)["initech"]
    assert again.snapshot_id == snap.snapshot_id, "the same rows, the same id, whatever the nonces"
    with connect(wh.path(settings), read_only=True) as con:
        assert publish.publish_tenant(con, settings, "us", "initech", online_marts())["snapshot_id"] == published.name

    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"initech": "0" * 64}))
    with pytest.raises(tenant_parquet.TenantKeyError, match=r"tenant initech: .*ranking_examples.* does not decrypt"):
        snap.read(snap.table("ranking_examples"), get_settings())
