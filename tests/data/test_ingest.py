"""Ingestion: reconciliation, quarantine reasons, idempotency, and the faults it must survive."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.core import tenant_parquet
from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.data.generate import generate
from ml.data.ingest import files, landing, partitions, plan, run
from tests.world import END, register, small_config

START = END - timedelta(days=3)
AFTER = END + timedelta(days=1)


def _lake_digests(settings) -> dict[str, str]:
    """Each lake and quarantine file's SHA-256: of its bytes; of its rows when encrypted (a silo
    tenant's: a rebuild from nothing encrypts with new nonces; a rerun keeps the file)."""
    return {
        p.relative_to(settings.home).as_posix(): (
            tenant_parquet.content_digest(p, settings, p.parent.parent.name.removeprefix("tenant=")).hex()
            if p.suffix == ".parquet" and tenant_parquet.is_encrypted(p)
            else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for root in (settings.stores.lake.root, settings.stores.quarantine.root)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def faulty(settings):
    cfg = small_config(faults=True)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root)
    return cfg


def _quarantine(settings, tenant_id="globex") -> pd.DataFrame:
    files = sorted(settings.stores.quarantine.root.glob(f"region=*/tenant={tenant_id}/date=*/part-0.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()


def test_every_fault_is_quarantined_with_its_reason_and_counts_reconcile(settings, faulty):
    [summary] = run.ingest_tenants(["globex"], START, AFTER, settings)
    q = _quarantine(settings)
    for reason in (
        "null_event_id",
        "null_user_id",
        "unknown_event_type",
        "tenant_mismatch",
        "timestamp_in_future",
        "timestamp_too_old",
        "malformed_line",
    ):
        assert summary["quarantined"].get(reason, 0) > 0, reason
        assert (q.reason == reason).sum() == summary["quarantined"][reason]
    assert summary["duplicates_dropped"] > 0
    assert (
        summary["rows_in"] == summary["landed"] + sum(summary["quarantined"].values()) + summary["duplicates_dropped"]
    )
    lake = pd.read_parquet(settings.stores.lake.tenant_dir("eu", "globex"))
    assert len(lake) == summary["landed"] and lake.event_id.is_unique
    assert set(lake.tenant_id) == {"globex"} and lake.event_id.notna().all()
    assert set(lake.event_type) <= {
        "click",
        "view",
        "complete",
        "skip",
        "like",
        "cancel_subscription",
        "item_published",
    }
    # quarantined rows keep what was received, with where it came from
    mal = q[q.reason == "malformed_line"]
    assert mal.raw_line.str.len().gt(0).all() and mal.line_no.gt(0).all()
    assert (q.loc[q.reason == "tenant_mismatch", "tenant_id"] == "someone-else").all()


def test_rerun_and_backfill_give_byte_identical_lake_and_no_lake_event(settings, faulty):
    tenants = ["acme", "globex", "initech"]
    assert plan.lake_event(run.ingest_tenants(tenants, START, AFTER, settings))["tenants"] == tenants
    first = _lake_digests(settings)
    rerun = run.ingest_tenants(tenants, START, AFTER, settings)
    assert _lake_digests(settings) == first
    assert [s["changed_dates"] for s in rerun] == [[]] * 3 and all(s["dates"] for s in rerun)
    assert plan.lake_event(rerun) == {
        "tenants": [],
        "rebuild_from": None,
        "rows_landed": sum(s["landed"] for s in rerun),
    }
    # a backfill of one past day after later days were ingested
    backfill = run.ingest_tenants(["globex"], START + timedelta(days=1), START + timedelta(days=2), settings)
    assert plan.lake_event(backfill)["tenants"] == []
    assert _lake_digests(settings) == first
    # starting over from nothing in another order gives the same bytes too
    shutil.rmtree(settings.stores.lake.root), shutil.rmtree(settings.stores.quarantine.root)
    for d in range(3, -1, -1):
        day = START + timedelta(days=d)
        run.ingest_tenants(tenants, day, day + timedelta(days=1), settings)
    assert plan.lake_event(run.ingest_tenants(tenants, START, AFTER, settings))["tenants"] == []
    assert _lake_digests(settings) == first


def test_one_tenants_bad_batch_does_not_alter_another(settings, faulty, tmp_path, monkeypatch):
    run.ingest_tenants(["acme"], START, AFTER, settings)
    alone = {k: v for k, v in _lake_digests(settings).items() if "tenant=acme" in k}
    run.ingest_tenants(["globex", "acme"], START, AFTER, settings)
    assert {k: v for k, v in _lake_digests(settings).items() if "tenant=acme" in k} == alone


def test_a_crashing_tenant_does_not_stop_its_chunk(settings, faulty, monkeypatch):
    real = run.ingest_days

    def flaky(s, tenant, days, **options):  # a bug we cannot provoke with data: stand in for it
        if tenant.tenant_id == "acme":
            raise OSError("disk on fire")
        return real(s, tenant, days, **options)

    monkeypatch.setattr(run, "ingest_days", flaky)
    with pytest.raises(RuntimeError, match="acme: OSError: disk on fire.*Other tenants"):
        run.ingest_tenants(["acme", "globex", "initech"], START, AFTER, settings)
    assert list(settings.stores.lake.root.glob("region=eu/tenant=globex/date=*/part-0.parquet"))
    assert list(settings.stores.lake.root.glob("region=us/tenant=initech/date=*/part-0.parquet"))


def test_incomplete_files_are_never_read_and_ingested_once_complete(settings, faulty, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "30")
    settings = get_settings()
    tenant = TenantStore(settings).get("acme")
    day = START
    folder = landing.landing_dir(settings, tenant, day)
    src = folder / "events-0001.csv"
    old = time.time() - 3600
    for p in settings.stores.landing.root.rglob("*.*"):
        os.utime(p, (old, old))
    # a second drop, still being written (fresh mtime), and a writer's .tmp file
    text = src.read_text().splitlines()
    header, body = text[0], text[1:]
    growing = folder / "events-0002.csv"
    growing.write_text(header + "\n" + "\n".join(body[:5]) + "\n")
    (folder / "events-0003.csv.tmp").write_text("garbage that must never be read\n")
    r1 = run.ingest_partition(settings, tenant, day)
    assert [f["name"] for f in r1.files] == ["events-0001.csv"]
    # the upload completes (and settles); the next run picks the late file up exactly once
    growing.write_text(
        header
        + "\n"
        + "\n".join(x.replace(x.split(",")[0], f'"late{i:04d}"', 1) for i, x in enumerate(body[:50]))
        + "\n"
    )
    os.utime(growing, (old, old))
    later = landing.dates_to_ingest(settings, tenant, day + timedelta(days=2), day + timedelta(days=3))
    assert day in later, "a late-completed file re-opens its date"
    r2 = run.ingest_partition(settings, tenant, day)
    assert [f["name"] for f in r2.files] == ["events-0001.csv", "events-0002.csv"]
    assert r2.landed == r1.landed + 50 and r2.reconciles
    r3 = run.ingest_partition(settings, tenant, day)
    assert r3.landed == r2.landed and r3.waiting_files == ["events-0003.csv.tmp"]
    # looked at again while a file of it waits (the writer's); no longer once that file is a leftover
    assert day in landing.dates_to_ingest(settings, tenant, day + timedelta(days=2), day + timedelta(days=3))
    os.utime(folder / "events-0003.csv.tmp", (old, old))
    assert run.ingest_partition(settings, tenant, day).waiting_files == []
    assert day not in landing.dates_to_ingest(settings, tenant, day + timedelta(days=2), day + timedelta(days=3))


def test_dropping_the_same_file_again_is_a_no_op(settings, faulty):
    tenant = TenantStore(settings).get("initech")
    before = run.ingest_partition(settings, tenant, START)
    digests = _lake_digests(settings)
    folder = landing.landing_dir(settings, tenant, START)
    shutil.copy(folder / "events-0001.parquet", folder / "events-0001-resent.parquet")
    after = run.ingest_partition(settings, tenant, START)
    assert after.landed == before.landed and after.rows_in == before.rows_in
    assert after.files[1]["status"] == "duplicate_of:events-0001.parquet"
    assert {k: v for k, v in _lake_digests(settings).items() if k.endswith(".parquet")} == {
        k: v for k, v in digests.items() if k.endswith(".parquet")
    }
    # the same content dropped on the next day: every row is a duplicate of yesterday's
    nxt = landing.landing_dir(settings, tenant, START + timedelta(days=1))
    shutil.copy(folder / "events-0001.parquet", nxt / "events-0009.parquet")
    r = run.ingest_partition(settings, tenant, START + timedelta(days=1))
    assert r.duplicates_dropped == before.landed and r.reconciles


def test_empty_batch_fails_its_checks(settings, faulty):
    tenant = TenantStore(settings).get("acme")
    day = END + timedelta(days=5)
    folder = landing.landing_dir(settings, tenant, day)
    folder.mkdir(parents=True)
    (folder / "events-0001.csv").write_bytes(b"")
    r = run.ingest_partition(settings, tenant, day)
    assert not r.suite_success and r.rows_in == 0 and r.landed == 0
    assert any(p.startswith("empty_batch") for p in r.batch_problems)
    assert any(p.startswith("empty_file") for p in r.batch_problems)


def test_all_null_key_column_fails_and_nothing_lands(settings, faulty):
    tenant = TenantStore(settings).get("acme")
    src = landing.landing_dir(settings, tenant, START) / "events-0001.csv"
    day = END + timedelta(days=6)
    folder = landing.landing_dir(settings, tenant, day)
    folder.mkdir(parents=True)
    df = pd.read_csv(src, dtype=str).head(200)
    df["event_id"] = None
    df["event_at"] = pd.Timestamp(day, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    df.to_csv(folder / "events-0001.csv", index=False)
    r = run.ingest_partition(settings, tenant, day)
    assert not r.suite_success and r.landed == 0
    assert r.quarantined == {"null_event_id": 200}
    assert any(p.startswith("keys_mostly_null") for p in r.batch_problems)
    assert pq.read_table(partitions.lake_dir(settings, tenant, day) / "part-0.parquet").num_rows == 0


def test_batch_failing_table_checks_is_quarantined_whole(settings, faulty):
    tenant = TenantStore(settings).get("acme")
    src = landing.landing_dir(settings, tenant, START) / "events-0001.csv"
    day = END + timedelta(days=7)
    folder = landing.landing_dir(settings, tenant, day)
    folder.mkdir(parents=True)
    df = pd.read_csv(src, dtype=str).head(100)
    df["event_at"] = pd.Timestamp(day, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    df.loc[df.index[:70], "user_id"] = None  # most user ids missing: the exporter is broken
    df.loc[df.event_type == "item_published", "event_type"] = "click"
    df.to_csv(folder / "events-0001.csv", index=False)
    r = run.ingest_partition(settings, tenant, day)
    assert r.landed == 0 and r.quarantined.get("batch_failed", 0) == 30 and r.quarantined["null_user_id"] == 70


KILL_SCRIPT = """
import sys
from datetime import date
from ml.core.settings import get_settings
from ml.core.tenants import TenantStore
from ml.data.ingest.run import ingest_partition
s = get_settings()
t = TenantStore(s).get("globex")
ingest_partition(s, t, date.fromisoformat(sys.argv[1]))
"""


@pytest.mark.parametrize("stage", ["before_write", "before_manifest"])
def test_sigkill_mid_batch_then_retry_leaves_exactly_the_input_rows(settings, faulty, tmp_path, stage):
    tenant = TenantStore(settings).get("globex")
    day = START + timedelta(days=1)
    expected = run.ingest_partition(settings, tenant, day)
    expected_digests = _lake_digests(settings)
    shutil.rmtree(settings.stores.lake.root)
    shutil.rmtree(settings.stores.quarantine.root)
    # a first, killed attempt (an older partial partition is also there: the previous run's)
    flag = tmp_path / "paused"
    env = {**os.environ, "TENANTFLOW_FAULT_PAUSE": stage, "TENANTFLOW_FAULT_PAUSE_FLAG": str(flag)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, day.isoformat()], env=env)
    deadline = time.time() + 120
    while not flag.exists():
        assert proc.poll() is None, "the ingest process died before reaching the pause point"
        assert time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = [p.name for p in settings.stores.lake.root.rglob("*") if p.is_file()]
    assert not any(n == "part-0.parquet" for n in leftovers) or stage == "before_manifest"
    # the retry (what Airflow does) rebuilds the partition: the same rows, none twice
    retry = run.ingest_partition(settings, tenant, day)
    assert retry.landed == expected.landed and retry.reconciles
    assert _lake_digests(settings) == expected_digests
    lake = pq.read_table(partitions.lake_dir(settings, tenant, day) / "part-0.parquet").to_pandas()
    assert lake.event_id.is_unique and len(lake) == expected.landed


def test_manifest_records_files_and_counts(settings, faulty):
    tenant = TenantStore(settings).get("globex")
    r = run.ingest_partition(settings, tenant, START)
    m = json.loads((partitions.lake_dir(settings, tenant, START) / "_manifest.json").read_text())
    assert m["rows_in"] == r.rows_in and m["landed"] == r.landed and m["quarantined"] == r.quarantined
    assert all(len(f["sha256"]) == 64 for f in m["files"])


def test_interval_resolution():
    assert plan.resolve_interval({"start": "2026-11-01", "end": "2026-11-03"}, None, None) == (
        "2026-11-01",
        "2026-11-03",
    )
    assert plan.resolve_interval({"start": "2026-11-01"}, None, None) == ("2026-11-01", "2026-11-02")
    with pytest.raises(ValueError, match="params start and end"):
        plan.resolve_interval({}, None, None)
    import datetime as dt

    s = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    assert plan.resolve_interval({}, s, s + dt.timedelta(days=1)) == ("2026-11-05", "2026-11-06")
    assert plan.chunk(["a", "b", "c"], 2) == [["a", "b"], ["c"]]


def test_chunks_are_balanced_by_weight():
    ids = ["a", "b", "c", "d", "e", "f"]
    # in order, the two heavy tenants would share a group: 100 + 90 + 1 against 3
    weights = {"a": 100, "b": 90, "c": 1, "d": 1, "e": 1, "f": 1}
    assert plan.chunk(ids, 3) == [["a", "b", "c"], ["d", "e", "f"]]
    groups = plan.chunk(ids, 3, weights)
    assert groups == [["a", "e", "f"], ["b", "c", "d"]]  # 102 against 92, each in registry order
    # as many groups as without weights, none larger than size
    assert plan.chunk(ids, 4, weights) == [["a", "f"], ["b", "c", "d", "e"]]  # 101 against 93
    assert plan.chunk(ids, 6, weights) == [ids]


def test_landing_bytes_counts_complete_files_of_the_interval(settings, faulty):
    tenant = TenantStore(settings).get("acme")
    folder = landing.landing_dir(settings, tenant, START)
    expected = sum(p.stat().st_size for p in landing.complete_landing_files(folder, settings.landing.settle_seconds))
    assert expected > 0
    assert landing.landing_bytes(settings, tenant, START, START + timedelta(days=1)) == expected
    (folder / "late.csv.tmp").write_text("x" * 1000)  # still being written: not counted
    assert landing.landing_bytes(settings, tenant, START, START + timedelta(days=1)) == expected
    assert landing.landing_bytes(settings, tenant, START + timedelta(days=1), START + timedelta(days=1)) == 0
    registered = TenantStore(settings).list()
    chunks = plan.plan_chunks(settings, registered, START, START + timedelta(days=1), chunk_size=8, parallel=2)
    assert sorted(t for c in chunks for t in c) == sorted(t.tenant_id for t in registered)
    assert len(chunks) == min(2, len(registered)), "at least as many chunks as tasks run at once"
    # the DAG run's form: its current_spec option reaches every chunk (off unless set)
    params = {"start": START.isoformat(), "tenants": ["acme"]}
    assert plan.plan_run(settings, params, None, None, 2) == [
        {
            "tenants": ["acme"],
            "start": START.isoformat(),
            "end": (START + timedelta(days=1)).isoformat(),
            "current_spec": False,
        }
    ]
    assert plan.plan_run(settings, params | {"current_spec": True}, None, None, 2)[0]["current_spec"] is True


def test_hidden_files_are_ignored_and_unknown_ones_named(settings, faulty):
    tenant = TenantStore(settings).get("acme")
    folder = landing.landing_dir(settings, tenant, START)
    (folder / ".hidden.csv").write_text("x")
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.txt").write_text("hello")
    assert [p.name for p in landing.complete_landing_files(folder, settings.landing.settle_seconds)] == [
        "events-0001.csv",
        "notes.txt",
    ]
    [report] = run.ingest_days(settings, tenant, [START])
    assert report.batch_problems == ["unsupported_file: notes.txt is not " + files.SUPPORTED]
    assert report.landed > 0 and report.reconciles
    assert date.fromisoformat(folder.name[5:]) == START
    assert Path(folder).is_dir()
