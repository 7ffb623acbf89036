"""Removing and purging a tenant (issue 15, point 8), against the real API, DuckDB and MLflow store.

A removed tenant's keys stop working and its id cannot be re-added; ``tenants remove --purge``
leaves a user id planted in its data (through the webhook, ingested, featurised, trained on,
scored and logged by the API) in the raw bytes of no file under the home, while the tenant that
shares its pool warehouse keeps its rows, its features build and the API keeps serving it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from ml.core import erasure_marks
from ml.core.errors import TenantError
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import warehouses
from ml.data.features import build_and_check_warehouse
from ml.data.ingest.run import ingest_tenants
from ml.models.kinds import online_marts
from ml.models.runs import snapshot_warehouse
from ml.models.score import score_warehouse
from ml.models.train import train_global, train_tenant
from ml.ops.erasure import purge_tenant
from tests.served import running_api
from tests.world import build_world, small_config

CANARY = {"acme": "canary-acme-7f3a9c51", "initech": "canary-initech-b20e64d8"}  # pool; silo


def _files_holding(root, needle: str) -> list[str]:
    raw = needle.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and raw in p.read_bytes())


def _plant(api, key: str, user: str) -> None:
    now = datetime.now(UTC)
    events = [
        {
            "event_id": f"{user}-{i}",
            "user_id": user,
            "item_id": f"i{i:06d}",
            "event_type": "click",
            "event_at": (now - timedelta(minutes=i)).isoformat(),
        }
        for i in range(1, 6)
    ]
    r = api.post("/v1/events", key, {"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
    assert api.post("/v1/recommendations", key, {"user_id": user, "k": 5}).status_code == 200  # logged


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A world whose acme (pool) and initech (silo) hold a canary user in every store, and a running API."""
    mp = pytest.MonkeyPatch()
    w = build_world(
        mp,
        tmp_path_factory.mktemp("erasure") / "home",
        [small_config(days=8)],
        silo=("initech",),
        publish=True,
        keys=True,
    )
    s = w.settings
    with running_api(s) as api:
        for tid, user in CANARY.items():
            _plant(api, w.keys[tid], user)
        today = date.today()
        ingest_tenants(list(CANARY), today, today + timedelta(days=1), s)
        for wh in w.warehouses:
            build_and_check_warehouse(wh, online_marts(), s)
            snapshot_warehouse(wh, None, s)
            score_warehouse(wh, s)
        train_global("recommender", "eu", "test", s, force=True)
        for tid in CANARY:
            train_tenant("recommender", tid, "test", s, force=True)
        yield w, api
    mp.undo()


def test_a_removed_tenant_cannot_come_back_and_its_keys_stay_dead(planted):
    w, api = planted
    store = TenantStore(w.settings)
    before = {t: api.post("/v1/recommendations", w.keys[t], {"user_id": "u000001", "k": 3}).status_code for t in CANARY}
    assert before == {"acme": 200, "initech": 200}
    store.remove("acme")
    with pytest.raises(TenantError, match="never reused"):
        store.add(Tenant("acme", "eu"))
    with pytest.raises(TenantError, match="never reused"):
        store.add(Tenant("acme", "eu"), replace=True)
    deadline = time.monotonic() + 30
    while api.post("/v1/recommendations", w.keys["acme"], {"user_id": "u000001", "k": 3}).status_code != 401:
        assert time.monotonic() < deadline, "the removed tenant's key still works"
        time.sleep(0.5)
    assert store.removed("acme")["purged_at"] is None  # its data waits for --purge


def test_a_purge_leaves_the_planted_user_in_no_file_and_the_neighbours_whole(planted):
    w, api = planted
    s, home = w.settings, w.settings.home
    for tid, user in CANARY.items():
        assert _files_holding(home, user), f"{tid}: the canary was never stored (the test would prove nothing)"
    pool = s.stores.warehouse_file("eu/pool")
    with duckdb.connect(str(pool), read_only=True) as con:
        globex_rows = con.execute("select count(*) from interaction_history where tenant_id = 'globex'").fetchone()
    globex_lake = sorted(p.name for p in s.stores.lake.tenant_dir("eu", "globex").rglob("*.parquet"))

    cli = [sys.executable, "-m", "ml.ops.cli", "tenants", "remove"]
    env = {**os.environ, "TENANTFLOW_HOME": str(home)}
    done = subprocess.run([*cli, "acme", "--purge"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "purged tenant acme" in out and "global.eu models will retrain" in out
    report = purge_tenant("initech", s)  # still registered: removed and purged in one step
    assert report["warehouse"]["files"] and report["models"]

    for tid, user in CANARY.items():
        assert _files_holding(home, user) == [], f"{tid}'s user survives the purge"
    assert not s.stores.warehouse_file("us/silo_initech").exists()
    # the neighbour in the rewritten pool file: its rows, its lake, a new build, the API
    with duckdb.connect(str(pool), read_only=True) as con:
        assert con.execute("select count(*) from interaction_history where tenant_id = 'globex'").fetchone() == (
            globex_rows
        )
        assert con.execute("select count(*) from interaction_history where tenant_id = 'acme'").fetchone() == (0,)
    assert sorted(p.name for p in s.stores.lake.tenant_dir("eu", "globex").rglob("*.parquet")) == globex_lake
    [eu] = warehouses(TenantStore(s).list())
    assert eu.tenants == ("globex",) and not build_and_check_warehouse(eu, online_marts(), s)["failed_nodes"]
    assert api.post("/v1/recommendations", w.keys["globex"], {"user_id": "u000001", "k": 3}).status_code == 200
    # acme's data trained eu's global models: each stays marked until the next train run retrains it
    # (reason erasure); globex alone has no labelled examples in this small world, so the mark
    # stays open rather than being dropped with a skipped run
    assert erasure_marks.pending(s, "global.eu", "recommender") == ["tenant acme purged"]
    r = train_global("recommender", "eu", "features", s)
    assert r.get("skipped") and erasure_marks.pending(s, "global.eu", "recommender"), r
    with pytest.raises(TenantError, match="never reused"):
        TenantStore(s).add(Tenant("initech", "us", isolation="silo", share_data=False))
