"""Erasing one end user when things go wrong (issue 15, point 8): a crash half-way, a file still
being written, an id that is part of other ids, an id that was never sent. The full path through
every store is ``tests/security/test_erasure.py``."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import warnings
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ml.core import control_db, erased_users, erasure_marks
from ml.core.errors import TenantError
from ml.core.tenants import TenantStore
from ml.data.generate import generate
from ml.data.ingest.run import ingest_days, ingest_tenants, tenant_lock
from ml.ops import user_erasure
from tests.world import END, lake_rows_by_user, register, small_config

START, AFTER = END - timedelta(days=3), END + timedelta(days=1)


@pytest.fixture
def landed(settings):
    """The three small tenants' drops (globex's with faults: malformed lines and more), ingested."""
    cfg = small_config(faults=True)
    register(settings, cfg)
    generate(cfg, settings.stores.landing.root)
    ingest_tenants(["acme", "globex"], START, AFTER, settings)
    return settings


def _landing_digests(settings, tenant_id: str) -> dict[str, str]:
    root = settings.stores.landing.tenant_dir("eu", tenant_id)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('{"user_id": "alice", oops', True),
        ("alice", True),
        ("e1,alice,i9", True),
        ("e1,alice2,i9", False),
        ("malice,e1", False),
        ("12524.0,germany", True),  # a numeric id as a float export writes it
        ("e1;ann.lee@x.com;i9", True),  # an id with characters that bound tokens
        ("e1;jo.ann.lee@x.com;i9", True),  # "." bounds a token: as 12524.0 names 12524
        ("e1;joann.lee@x.com;i9", False),
    ],
)
def test_a_malformed_line_is_the_users_when_it_names_the_id_as_a_whole_token(settings, line, named):
    user = "12524" if line.startswith("12524") else "ann.lee@x.com" if "@" in line else "alice"
    with control_db.connect(settings) as con:
        erased_users.record(con, settings, "acme", user)
    # ingestion and a history import, which know the tombstone only, apply the erasure's rule
    assert erased_users.erased_lines(settings, "acme", pd.Series([line])).tolist() == [named]
    assert erased_users.erased_lines(settings, "globex", pd.Series([line])).tolist() == [False]
    pattern = user_erasure.names_pattern(user)
    assert bool(re.search(pattern, line)) is named
    assert pc.match_substring_regex(pa.array([line]), pattern).to_pylist() == [named]  # RE2, as Arrow runs it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas warns of every pattern with capturing groups (once per file)
        assert pd.Series([line]).str.contains(pattern, regex=True).tolist() == [named]


def test_a_crash_after_landing_was_rewritten_is_finished_by_running_the_erasure_again(landed, monkeypatch):
    before = lake_rows_by_user(landed, "eu", "globex")
    user = max(before, key=before.get)

    def crash(*args, **kwargs):  # a process killed between the landing rewrite and the lake rebuild
        raise OSError("killed")

    monkeypatch.setattr(user_erasure, "ingest_days", crash)
    with pytest.raises(OSError):
        user_erasure.erase_user("globex", user, landed)
    assert user in lake_rows_by_user(landed, "eu", "globex"), "the lake was not rebuilt (the crash happened first)"
    monkeypatch.undo()
    report = user_erasure.erase_user("globex", user, landed)
    assert report["landing_files"] == [] and report["lake_days"], "the landing was clean: the lake days still held it"
    assert lake_rows_by_user(landed, "eu", "globex") == {u: n for u, n in before.items() if u != user}


def test_a_file_still_being_written_stops_the_erasure_before_anything_changes(landed, monkeypatch):
    rows = lake_rows_by_user(landed, "eu", "globex")
    user = max(rows, key=rows.get)
    folder = landed.stores.landing.day_dir("eu", "globex", END)
    before = _landing_digests(landed, "globex")
    an_hour_ago = time.time() - 3600
    for p in landed.stores.landing.tenant_dir("eu", "globex").rglob("*.jsonl"):
        os.utime(p, (an_hour_ago, an_hour_ago))  # the generated drops finished uploading long ago
    (folder / "upload.jsonl").write_text('{"event_id": "w1", "user_id": "someone", "item_id": "i1"')  # half a line
    monkeypatch.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "600")
    from ml.core.settings import get_settings

    with pytest.raises(TenantError, match=r"upload\.jsonl .*still being written; nothing was erased yet"):
        user_erasure.erase_user("globex", user, get_settings())
    assert {k: v for k, v in _landing_digests(landed, "globex").items() if "upload" not in k} == before
    assert user in lake_rows_by_user(landed, "eu", "globex")


def test_an_id_that_was_never_sent_changes_nothing_and_retrains_nothing(landed):
    lake = lake_rows_by_user(landed, "eu", "globex")
    report = user_erasure.erase_user("globex", "nobody-by-this-id", landed)
    assert not report["found"] and report["models_marked"] == [] and report["landing_files"] == []
    assert lake_rows_by_user(landed, "eu", "globex") == lake
    assert erasure_marks.pending(landed, "globex", "recommender") == []


def test_an_erasure_marks_the_kinds_the_tenant_uses_and_every_kind_of_its_regions_global_models(landed):
    """A tenant that uses only the recommender has no churn model to retrain (a mark for it would never close); the
    region's global models, which its shared data trained, are marked whatever the tenant uses."""
    from dataclasses import replace

    store = TenantStore(landed)
    store.add(replace(store.get("globex"), model_kinds=("recommender",)), replace=True)
    before = lake_rows_by_user(landed, "eu", "globex")
    report = user_erasure.erase_user("globex", max(before, key=before.get), landed)
    assert report["found"] and report["models_marked"] == ["globex", "global.eu"], report
    assert erasure_marks.pending(landed, "globex", "recommender") and not erasure_marks.pending(
        landed, "globex", "churn"
    )
    assert erasure_marks.pending(landed, "global.eu", "churn") and erasure_marks.pending(
        landed, "global.eu", "recommender"
    )


def test_an_ingest_of_the_tenant_waits_while_an_erasure_holds_its_lake(landed):
    tenant = TenantStore(landed).get("globex")
    lake = landed.stores.lake.tenant_dir("eu", "globex")
    written = {p: p.stat().st_mtime_ns for p in lake.rglob("part-0.parquet")}
    with tenant_lock(landed, tenant):  # as erase_user holds it
        ingest = threading.Thread(target=ingest_days, args=(landed, tenant, [START, START + timedelta(days=1)]))
        ingest.start()
        ingest.join(5)  # unlocked, this rewrites two partitions in well under a second
        assert ingest.is_alive() and {p: p.stat().st_mtime_ns for p in written} == written
    ingest.join(60)
    assert not ingest.is_alive()
    assert {p: p.stat().st_mtime_ns for p in written} != written, "it ran once the lock was released"
