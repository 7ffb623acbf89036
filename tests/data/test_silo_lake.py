"""A silo tenant's lake and quarantine are Parquet encrypted with its key (issue 15, point 6):
written so by ingestion, read so by deduplication, dbt, status and erasure; a rerun that rebuilds
the same rows changes no byte; files written before encryption are sealed by the next build. Its
landing files are sealed by the ingestion that read them, and read sealed by the next one."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from ml.core import control_db, sealed_files, tenant_parquet, webhook_ledger
from ml.core.settings import get_settings
from ml.core.tenant_keys import silo_key
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect, warehouses
from ml.data.features import build_warehouse
from ml.data.generate import generate
from ml.data.ingest import landing
from ml.data.ingest.run import ingest_tenants
from ml.ops.status import _monitoring_lines, status
from ml.ops.tenant_view import drift_line
from tests.world import register, small_config


def _landing(settings):
    return sorted(p for p in settings.stores.landing.tenant_dir("us", "initech").rglob("*") if p.is_file())


def _files(settings, tenant_id: str):
    return sorted(settings.stores.lake.tenant_dir("us", tenant_id).rglob("part-0.parquet"))


def test_a_silo_lake_is_encrypted_rebuilt_without_change_and_read_by_dbt_and_status(settings):
    cfg = small_config(days=6)
    register(settings, cfg)  # initech is the silo
    generate(cfg, settings.stores.landing.root, workers=1)
    drops = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in _landing(settings)}
    ingest_tenants(["initech", "acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    # the drops the ingest read are sealed in place: names, times and content kept, no plain byte left
    assert drops and all(sealed_files.is_sealed(p) for p in drops)
    assert {p: (p.stat().st_mtime_ns, sealed_files.content_sha256(p, settings, "initech")) for p in drops} == drops
    assert not [p for p in settings.stores.landing.tenant_dir("eu", "acme").rglob("*.*") if sealed_files.is_sealed(p)]
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
    landed = b"".join(p.read_bytes() for p in drops)
    assert not [u for u in users if u.encode() in landed], "plain ids in a sealed landing file"
    with pytest.raises(OSError):
        pq.read_schema(files[0])  # without the key: not even the schema
    assert not tenant_parquet.is_encrypted(next(settings.stores.lake.tenant_dir("eu", "acme").rglob("part-0.parquet")))

    before = {f: f.read_bytes() for f in files}
    [again] = ingest_tenants(["initech"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    assert {f: f.read_bytes() for f in _files(settings, "initech")} == before, "the same rows: the same bytes"
    assert again["changed_dates"] == [], again

    # a partition, a landing file and a prediction log written before encryption (plain) are
    # sealed by the next build, which reads the lake
    legacy = files[0]
    pq.write_table(tenant_parquet.read_table(legacy, settings, "initech"), legacy)
    assert not tenant_parquet.is_encrypted(legacy)
    drop = next(iter(drops))
    drop.write_bytes(sealed_files.read_bytes(drop, settings, "initech"))
    os.utime(drop, ns=(drops[drop][0], drops[drop][0]))
    old_log = settings.stores.prediction_log.day_dir("us", "initech", cfg.start_date) / "part-000000-old.jsonl"
    old_log.parent.mkdir(parents=True)
    old_log.write_text('{"at": "2026-11-01T09:00:00+00:00", "tenant_id": "initech", "user_id": "u-old"}\n')
    key = webhook_ledger.ledger_key(silo_key(settings, "initech"))
    hashed = {e: webhook_ledger.ledger_id(key, e) for e in ("u-old-e1", "u-old-e3", "h1:sent-so")}
    ledger = control_db.open_sqlite(settings.stores.webhook_ledger, "webhook")  # ids recorded as sent
    ledger.executemany(
        "insert into api_events values (?, ?, 'h', 'r', 't', 'f')",
        [("initech", "u-old-e1"), ("acme", "u-old-e2"), ("initech", "h1:sent-so"), ("initech", "u-old-e3"),
         ("initech", hashed["u-old-e3"])],  # e3 replayed after hashing began: accepted again, hashed
    )  # fmt: skip
    ledger.close()
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "us/silo_initech")
    assert not build_warehouse(wh, settings)["failed_nodes"]
    assert tenant_parquet.is_encrypted(legacy) and sealed_files.is_sealed(drop) and sealed_files.is_sealed(old_log)
    assert sealed_files.content_sha256(drop, settings, "initech") == drops[drop][1]
    assert b"u-old" in sealed_files.read_bytes(old_log, settings, "initech") and b"u-old" not in old_log.read_bytes()
    with sqlite3.connect(settings.stores.webhook_ledger) as ledger:
        ids = set(ledger.execute("select tenant_id, event_id from api_events").fetchall())
    assert ids == {("initech", h) for h in hashed.values()} | {("acme", "u-old-e2")}, "a pool id stays"
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


class _KmsDown:
    """A provider of one's own (``TENANTFLOW_KEYS_PROVIDER=module:attribute``) whose service is down."""

    def __init__(self, settings) -> None:
        pass

    def key(self, tenant_id: str, create: bool) -> str | None:
        raise ConnectionError("KMS unreachable")


@pytest.mark.parametrize(
    "provider, values, said",
    [
        ("env", {"initech": "not-a-key"}, "not 64 hex characters"),
        ("nosuch", {}, "unknown key provider 'nosuch'"),
        ("tests.data.test_silo_lake:_KmsDown", {}, "did not answer: ConnectionError: KMS unreachable"),
        ("no_such_module:Provider", {}, "did not answer: ModuleNotFoundError"),
        ("file", {}, "did not answer: IsADirectoryError"),  # its key file cannot be read
    ],
    ids=["malformed", "unknown", "failing", "not-importable", "unreadable-file"],
)
def test_a_key_provider_that_cannot_answer_is_one_tenants_problem(settings, monkeypatch, provider, values, said):
    """However the key provider fails for a silo tenant, its readers raise their key error naming the tenant (a
    lake file, a sealed landing file), and so do its writers (a new Parquet or sealed file: the key unavailable, as
    a reader's, not the provider's own error); ``status`` reports it in the tenant's row; the other tenants go on."""
    cfg = small_config(days=1)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["initech", "acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    lake, sealed = _files(settings, "initech")[0], _landing(settings)[0]
    if provider == "file":
        key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=initech.key"
        key_file.unlink()
        key_file.mkdir()
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", provider)
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps(values))
    now = get_settings()
    with pytest.raises(tenant_parquet.TenantKeyError, match=rf"^tenant initech: .*{said}.*cannot be opened without it"):
        tenant_parquet.read_table(lake, now, "initech")
    with pytest.raises(tenant_parquet.TenantKeyError, match=rf"^tenant initech: .*{said}"):
        sealed_files.content_sha256(sealed, now, "initech")
    for writer in (tenant_parquet.writer_key, sealed_files.writer_key):
        with pytest.raises(
            tenant_parquet.KeyUnavailableError, match=rf"^tenant initech: .*{said}.*new files cannot be written"
        ):
            writer(now, "initech")
    rows = {r["tenant_id"]: r for r in status(now)}
    assert rows["acme"]["lake_rows"] > 0 and not rows["initech"]["lake_rows"]
    assert any(
        p.startswith("lake not readable: tenant initech: ") and said in p for p in rows["initech"]["health_problems"]
    )


def test_a_sealed_csv_keeps_each_quarantined_rows_raw_line_and_a_rerun_reads_it_the_same(settings):
    """Quarantined rows keep the line they came in (read again from the landing file): from a silo
    tenant's CSV before and after it is sealed, the quarantine's rows are the same."""
    cfg = small_config(days=1)
    register(settings, cfg)
    day = cfg.start_date
    folder = settings.stores.landing.day_dir("us", "initech", day)
    folder.mkdir(parents=True)
    at = f"{day.isoformat()}T10:00:00Z"
    lines = [
        "event_id,user_id,item_id,event_type,event_at",
        f"e1,u-sealed-1,i1,click,{at}",
        "e2,u-sealed-2,i2,click,not-a-time",
        f"e3,u-sealed-3,i3,teleport,{at}",
    ]
    (folder / "export.csv").write_text("\n".join(lines) + "\n")
    os.utime(folder / "export.csv", (0, 0))  # settled long ago
    end = day + timedelta(days=1)
    ingest_tenants(["initech"], day, end, settings)
    assert sealed_files.is_sealed(folder / "export.csv")
    quarantine = next(settings.stores.quarantine.tenant_dir("us", "initech").rglob("part-0.parquet"))
    first = tenant_parquet.read_table(quarantine, settings, "initech").to_pylist()
    assert sorted(r["raw_line"] for r in first) == sorted(lines[2:]), first
    quarantine.unlink()  # rebuilt from the sealed file alone
    [again] = ingest_tenants(["initech"], day, end, settings)
    assert tenant_parquet.read_table(quarantine, settings, "initech").to_pylist() == first
    assert again["quarantined"] and again["landed"] == 1, again


def test_a_drop_is_sealed_only_once_ingested_and_unchanged_for_the_grace_period(settings, monkeypatch):
    """A silo tenant's drop stays as it was uploaded until it was ingested as it is and unchanged for
    TENANTFLOW_LANDING_SEAL_AFTER_SECONDS: an uploader that appends after a pause finds its plain
    file (ingested again as a late file), never a sealed one it would corrupt."""
    monkeypatch.setenv("TENANTFLOW_LANDING_SEAL_AFTER_SECONDS", "3600")
    settings = get_settings()
    cfg = small_config(days=1)
    register(settings, cfg)
    day, end = cfg.start_date, cfg.start_date + timedelta(days=1)
    drop = settings.stores.landing.day_dir("us", "initech", day) / "export.csv"
    drop.parent.mkdir(parents=True)
    drop.write_text(f"event_id,user_id,item_id,event_type,event_at\ne1,u1,i1,click,{day.isoformat()}T10:00:00Z\n")
    ingest_tenants(["initech"], day, end, settings)
    assert not sealed_files.is_sealed(drop), "changed within the hour: left as uploaded"
    with drop.open("a") as f:  # the uploader appends; the file is an hour old by the next run
        f.write(f"e2,u2,i2,click,{day.isoformat()}T11:00:00Z\n")
    old = drop.stat().st_mtime - 7200
    os.utime(drop, (old, old))
    tenant = TenantStore(settings).get("initech")
    assert landing.seal_landing(settings, tenant, [day]) == 0, "its content was never ingested: not sealed"
    [again] = ingest_tenants(["initech"], day, end, settings)  # the late rows land, then the file is sealed
    assert again["landed"] == 2 and sealed_files.is_sealed(drop), again
    assert sealed_files.read_bytes(drop, settings, "initech").count(b"\n") == 3


def test_monitor_run_names_a_warehouse_its_key_does_not_open_and_checks_the_others(settings, monkeypatch, capsys):
    """``tenantflow monitor run`` over every warehouse: acme's (a silo, between the two pools) does not open, its key
    being malformed; the command names it with why, still checks the pool after it, and exits 1 (it stopped there)."""
    from ml.ops.cli import main

    register(settings, small_config(), silo=("acme",))
    for t in TenantStore(settings).list():  # empty warehouses: every check is its tenant's error row
        path = settings.stores.warehouse_file(t.warehouse_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        connect(path).close()
    assert [w.key for w in warehouses(TenantStore(settings).list())] == ["eu/pool", "eu/silo_acme", "us/pool"]
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", json.dumps({"acme": "not-a-key"}))
    capsys.readouterr()
    assert main(["monitor", "run"]) == 1
    shown = capsys.readouterr()
    printed = json.loads("[" + shown.out.replace("}\n{", "},\n{") + "]")
    assert [p["warehouse"] for p in printed] == ["eu/pool", "eu/silo_acme", "us/pool"], shown.out
    assert set(printed[2]["tenants"]) == {"initech"} and "checked_on" in printed[2], printed[2]
    assert printed[1]["error"].startswith("eu/silo_acme: WarehouseKeyError: tenant acme: "), printed[1]
    assert "not checked: eu/silo_acme: WarehouseKeyError: tenant acme: " in shown.err and "64 hex" in shown.err
    # status: acme's verdict cannot be read now (it said "not monitored yet"); the others' can
    rows = {r["tenant_id"]: r for r in status(get_settings())}
    assert rows["acme"]["drift"]["error"].startswith("its warehouse does not open: tenant acme: "), rows["acme"]
    assert "monitor's verdict not readable: its warehouse does not open" in _monitoring_lines(rows["acme"])
    assert rows["initech"]["drift"]["last_checked_at"] and rows["initech"]["drift"]["error"] is None
    assert drift_line(rows["acme"]["drift"]).startswith(
        "verdict not readable: its warehouse does not open: tenant acme"
    )


def test_an_erasure_refused_while_the_key_provider_is_down_says_to_mend_the_provider_not_the_file(
    settings, monkeypatch
):
    """A silo tenant's sealed landing files cannot be read back while its key provider does not answer: the erasure
    is refused before anything changes, and its advice is the key provider's (the file is not what is wrong)."""
    from ml.core.errors import TenantError
    from ml.ops.user_erasure import erase_user

    cfg = small_config(days=1)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["initech"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    user = next(
        u
        for u in tenant_parquet.read_table(_files(settings, "initech")[0], settings, "initech")["user_id"].to_pylist()
        if u
    )
    before = {p: p.read_bytes() for p in _landing(settings)}
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "tests.data.test_silo_lake:_KmsDown")
    with pytest.raises(
        TenantError, match=r"^tenant initech: landing file .* cannot be opened without the tenant's key"
    ) as e:
        erase_user("initech", user, get_settings())
    assert "KMS unreachable" in str(e.value) and "make the key provider answer" in str(e.value), e.value
    assert "remove or fix the file" not in str(e.value)
    assert {p: p.read_bytes() for p in _landing(settings)} == before
    monkeypatch.delenv("TENANTFLOW_KEYS_PROVIDER")  # the key answers; a sealed file cut short is the file's fault
    damaged = next(iter(before))
    damaged.write_bytes(before[damaged][:-40])
    with pytest.raises(TenantError, match=r"cannot be read back .*remove or fix the file"):
        erase_user("initech", user, get_settings())


def test_a_purge_does_not_ask_a_key_provider_of_ones_own(settings, monkeypatch):
    """A purge deletes a silo tenant's key only where this installation keeps it (the ``file`` provider); with a
    provider of one's own it does not build it (one that does not import, a KMS client that cannot start, failed
    the purge after the tenant's folders were deleted, before its audit entry)."""
    from ml.ops.erasure import purge_tenant

    cfg = small_config(days=1)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["initech"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "no_such_module:Provider")
    report = purge_tenant("initech", get_settings())
    assert report["warehouse"]["key"] is None and not settings.stores.lake.tenant_dir("us", "initech").exists()
    assert TenantStore(settings).removed("initech")["purged_at"] is not None
