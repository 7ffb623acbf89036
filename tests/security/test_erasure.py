"""Removing and purging a tenant (issue 15, point 8), against the real API, DuckDB and MLflow store.

A removed tenant's keys stop working and its id cannot be re-added; ``tenants remove --purge``
leaves a user id planted in its data (through the webhook, ingested, featurised, trained on,
scored and logged by the API) in the raw bytes of no file under the home, while the tenant that
shares its pool warehouse keeps its rows, its features build and the API keeps serving it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ml.core import audit, erasure_marks, prediction_log, sealed_files
from ml.core.errors import TenantError
from ml.core.tenant_keys import silo_key
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import connect as warehouse_connect
from ml.core.warehouse import warehouses
from ml.core.webhook_ledger import ledger_id, ledger_key
from ml.data.data_docs import build_data_docs
from ml.data.features import build_and_check_warehouse
from ml.data.ingest.run import ingest_tenants
from ml.models import recsys, registry
from ml.models.champion import download_family
from ml.models.kinds import online_marts
from ml.models.runs import snapshot_warehouse
from ml.models.score import score_warehouse
from ml.models.train import train_global, train_tenant
from ml.ops.erasure import purge_tenant
from ml.ops.user_erasure import erase_user
from tests.served import running_api
from tests.world import build_world, lake_rows_by_user, small_config

CANARY = {"acme": "canary-acme-7f3a9c51", "initech": "canary-initech-b20e64d8"}  # pool; silo
ERASED = "canary-globex-user-3e9d0c17"  # an end user of globex (pool, sharing) who asks to be erased


def _bytes(path) -> bytes:
    """A file's bytes; none for one that went while the home was listed (the running API's SQLite
    write-ahead logs come and go: their content is in the database file, which is read)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _files_holding(root, needle: str) -> list[str]:
    """Files under ``root`` holding ``needle`` in their raw bytes, as UTF-8 or as UTF-32 (NumPy's
    string arrays, e.g. a classic family's catalogue in ``arrays.npz``)."""
    raws = (needle.encode(), needle.encode("utf-32-le"))
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and any(r in _bytes(p) for r in raws)
    )


_PLANTED_AT = datetime.now(UTC)


def _events(user: str) -> list[dict]:
    """Five clicks of ``user``; the silo canary's first is on an item of its own (no other user has it)."""
    return [
        {
            "event_id": f"{user}-{i}",
            "user_id": user,
            "item_id": f"{user}-item" if i == 1 and user == CANARY["initech"] else f"i{i:06d}",
            "event_type": "click",
            "event_at": (_PLANTED_AT - timedelta(minutes=i)).isoformat(),
        }
        for i in range(1, 6)
    ]


def _plant(api, key: str, user: str) -> None:
    events = _events(user)
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
        for tid, user in [*CANARY.items(), ("globex", ERASED)]:
            _plant(api, w.keys[tid], user)
        today = date.today()
        ingest_tenants([*CANARY, "globex"], today, today + timedelta(days=1), s)
        for wh in w.warehouses:
            build_and_check_warehouse(wh, online_marts(), s)
            snapshot_warehouse(wh, None, s)
            score_warehouse(wh, s)
        train_global("recommender", "eu", "test", s, force=True)
        for tid in [*CANARY, "globex"]:
            train_tenant("recommender", tid, "test", s, force=True)
        build_data_docs(s)
        yield w, api
    mp.undo()


def _stored_in(root, needle: str) -> list[str]:
    """Files under ``root`` holding ``needle``: in their bytes, gzip- or zstd-decompressed, or (Parquet,
    DuckDB, whose strings are compressed) in any text column."""
    import gzip

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import zstandard

    raw, found = needle.encode(), []
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        data = _bytes(p)
        if data[:2] == b"\x1f\x8b":
            data += gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            data += zstandard.ZstdDecompressor().decompressobj().decompress(data)
        hit = raw in data
        if not hit and data[:4] == b"PAR1":
            table = pq.read_table(p)
            hit = any(
                pc.any(pc.match_substring(c.cast("string"), needle)).as_py()
                for c in table.columns
                if str(c.type) in ("string", "large_string", "dictionary<values=string, indices=int32, ordered=0>")
            )
        if not hit and p.suffix == ".duckdb":
            with warehouse_connect(p, read_only=True) as con:
                text = con.execute(
                    "select table_schema, table_name, column_name from information_schema.columns "
                    "where data_type = 'VARCHAR'"
                ).fetchall()
                hit = any(
                    con.execute(f'select count(*) from "{a}"."{b}" where contains("{c}", ?)', [needle]).fetchone()[0]
                    for a, b, c in text
                )
        if hit:
            found.append(str(p.relative_to(root)))
    return found


def test_a_silo_tenants_canary_is_in_the_raw_bytes_of_no_file_under_the_home(planted, tmp_path):
    """Issue 15, point 6. initech's (silo) canary went through the webhook, ingestion, the feature
    build, GX, publishing, snapshots, scoring, training and the API's prediction log: it is in the
    raw bytes of no file under the home (the pool tenant's canary is, in the same stores). It was
    stored: its sealed landing file, its encrypted prediction log and the ledger's keyed hashes of
    its event ids hold it for whoever has the key."""
    w, api = planted
    s, home, user = w.settings, w.settings.home, CANARY["initech"]
    assert _files_holding(home, user) == []  # nor its own item, f"{user}-item", in the model's catalogue
    # a classic family's arrays hold the catalogue: sealed (this small tenant's competition registers one)
    versions = registry.client(s).search_model_versions("name = 'recommender.initech'")
    families = [v for v in versions if v.tags.get("family", "lightgbm") != "lightgbm"]
    assert families, [v.tags.get("family") for v in versions]
    for v in families:
        folder = download_family("recommender.initech", v.version, tmp_path / str(v.version), s)
        assert all(sealed_files.is_sealed(folder / f) for f in recsys.FILES), v.tags["family"]
    assert _files_holding(home, CANARY["acme"]), "the pool tenant's canary is stored in plain bytes"
    sealed = [p for p in home.rglob("*.parquet") if "tenant=initech" in p.as_posix() and "landing" not in p.parts]
    assert {p.relative_to(home).parts[0] for p in sealed} >= {"lake", "snapshots", "published"}
    assert [p for p in sealed if p.read_bytes()[:4] != b"PARE"] == []

    assert _sealed_holding(s, user), "the canary's webhook file is sealed, and holds it"
    logs = prediction_log.files(s, "us", "initech")
    assert logs and all(sealed_files.is_sealed(p) for p in logs)
    logged = [r for p in logs for r in prediction_log.read_records(p, s, "initech")]
    assert [r for r in logged if r.get("user_id") == user], "the API's answer to the canary was logged"
    key = ledger_key(silo_key(s, "initech"))
    con = sqlite3.connect(s.stores.webhook_ledger)
    ids = {r[0] for r in con.execute("select event_id from api_events where tenant_id = 'initech'")}
    con.close()
    assert {ledger_id(key, f"{user}-{i}") for i in range(1, 6)} <= ids and not [i for i in ids if user in i]
    # the keyed ids still answer a replay with the original receipt, and a changed body is a conflict
    again = _events(user)
    r = api.post("/v1/events", w.keys["initech"], {"events": again})
    assert r.status_code == 200 and r.json()["replayed"] == 5, r.text
    again[0]["item_id"] = "i999999"
    assert api.post("/v1/events", w.keys["initech"], {"events": again}).status_code == 409


def test_an_erased_user_is_in_no_store_and_a_resent_row_of_theirs_is_dropped(planted):
    w, api = planted
    s, home = w.settings, w.settings.home
    assert len(_stored_in(home, ERASED)) >= 5, "the user was never stored widely (the test would prove nothing)"
    before = lake_rows_by_user(s, "eu", "globex")
    generated = max((u for u in before if u != ERASED), key=before.get)  # from the tenant's JSON-lines exports
    history = "select tenant_id, count(*) from interaction_history where user_id = ? group by 1 order by 1"
    with warehouse_connect(s.stores.warehouse_file("eu/pool"), read_only=True) as con:
        rows = con.execute(history, [generated]).fetchall()  # generated ids repeat across tenants
    assert [t for t, _ in rows] == ["acme", "globex"], rows

    env = {**os.environ, "TENANTFLOW_HOME": str(home)}
    cli = [sys.executable, "-m", "ml.ops.cli", "tenants", "erase-user", "globex", ERASED]
    done = subprocess.run(cli, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "erased a user of globex" in done.stdout and ERASED not in done.stdout
    assert _stored_in(home, ERASED) == []
    report = erase_user("globex", generated, s)
    assert report["landing_files"] and report["lake_days"] and report["warehouse"] and report["snapshot_rows"]
    after = lake_rows_by_user(s, "eu", "globex")
    assert generated not in after and after == {u: n for u, n in before.items() if u not in (ERASED, generated)}
    with warehouse_connect(s.stores.warehouse_file("eu/pool"), read_only=True) as con:
        assert con.execute(history, [generated]).fetchall() == rows[:1], "acme's user of the same id stays"
    # the API swapped to the republished features; the erased user is served as anyone unknown
    deadline = time.monotonic() + 30
    while api.post("/v1/recommendations", w.keys["globex"], {"user_id": generated, "k": 3}).json()["arm"] != (
        "cold_start"
    ):
        assert time.monotonic() < deadline, "the API still serves the erased user's features"
        time.sleep(0.5)
    # the audit names the tenant and the tombstone, never the user; models that learned from them retrain
    entries = json.dumps([(e.subject, e.detail) for e in audit.entries(s, "globex", actions=("user_erasure",))])
    assert entries.count("landing_files") == 2 and ERASED not in entries and generated not in entries
    assert {o for o in ("globex", "global.eu") if erasure_marks.pending(s, o, "recommender")} == {"globex", "global.eu"}
    # the tenant sends the user's events again: they are counted and dropped, neither landed nor quarantined
    _plant(api, w.keys["globex"], ERASED)
    today = date.today()
    [summary] = ingest_tenants(["globex"], today, today + timedelta(days=1), s)
    assert summary["dropped"] == {"erased_user": 5}, summary
    assert ERASED not in lake_rows_by_user(s, "eu", "globex")
    assert _stored_in(s.stores.quarantine.root, ERASED) == []


def test_a_silo_users_erasure_opens_and_reseals_its_files(planted):
    """Erasing an end user of initech (silo): its landing files are opened, rewritten without the
    user and sealed again; the lake, the prediction log and the ledger (hashed ids) lose them too."""
    w, api = planted
    s = w.settings
    user = "canary-initech-erased-5c1d"
    _plant(api, w.keys["initech"], user)
    today = date.today()
    ingest_tenants(["initech"], today, today + timedelta(days=1), s)
    assert _sealed_holding(s, user) and user in lake_rows_by_user_encrypted(s, "initech")
    time.sleep(s.serve.log_interval + 1)  # the API's answer to the user is flushed to its prediction log
    report = erase_user("initech", user, s)
    assert report["landing_files"] and report["lake_days"], report
    assert report["prediction_log_records"] >= 1 and report["ledger_rows"] == 5, report
    assert _sealed_holding(s, user) == []  # and every landing file of initech still sealed
    assert user not in lake_rows_by_user_encrypted(s, "initech")
    logged = [r for p in prediction_log.files(s, "us", "initech") for r in prediction_log.read_records(p, s, "initech")]
    assert [r for r in logged if r.get("user_id") == user] == []
    assert all(sealed_files.is_sealed(p) for p in prediction_log.files(s, "us", "initech"))
    assert _files_holding(s.home, user) == []


def lake_rows_by_user_encrypted(settings, tenant_id: str) -> set[str]:
    from ml.core import tenant_parquet

    paths = settings.stores.lake.files("us", tenant_id, "part-0.parquet")
    return {
        u for p in paths for u in tenant_parquet.read_table(p, settings, tenant_id, ["user_id"])["user_id"].to_pylist()
    }


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


def _sealed_holding(settings, user: str) -> list[str]:
    """initech's (silo) landing files that hold ``user`` once opened with its key; every one is sealed."""
    landing = [p for p in settings.stores.landing.tenant_dir("us", "initech").rglob("*") if p.is_file()]
    assert landing and all(sealed_files.is_sealed(p) for p in landing)
    return [p.name for p in landing if user.encode() in sealed_files.read_bytes(p, settings, "initech")]


def test_a_purge_leaves_the_planted_user_in_no_file_and_the_neighbours_whole(planted):
    w, api = planted
    s, home = w.settings, w.settings.home
    assert _files_holding(home, CANARY["acme"]), "acme: the canary was never stored (the test would prove nothing)"
    assert _sealed_holding(s, CANARY["initech"]), "initech: the canary was never stored"
    pages = [p for p in s.stores.gx_home.rglob("*.html") if b"tenant=acme" in _bytes(p)]
    assert pages, "acme had no Data Docs page (the purge's re-render would prove nothing)"
    pool = s.stores.warehouse_file("eu/pool")
    with warehouse_connect(pool, read_only=True) as con:
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
    assert report["warehouse"]["key"] and not Path(report["warehouse"]["key"]).exists()  # crypto-shredded

    for tid, user in CANARY.items():
        assert _files_holding(home, user) == [], f"{tid}'s user survives the purge"
    assert [p for p in home.rglob("*") if "tenant=initech" in p.as_posix() and p.is_file()] == []
    assert not s.stores.warehouse_file("us/silo_initech").exists()
    site = s.stores.gx_home  # the Data Docs were rendered again from what is left: no page of theirs
    assert report["data_docs"] == "rebuilt" and s.stores.data_docs_index.exists()
    named = re.compile(rb"\b(acme|initech)\b")  # in a page, a result, a suite (suites are named per tenant)
    files = [p for p in site.rglob("*") if p.is_file()]
    assert [p for p in files if named.search(p.relative_to(site).as_posix().encode()) or named.search(_bytes(p))] == []
    assert [p for p in files if b"tenant=globex" in _bytes(p)], "globex's pages stay"
    # the neighbour in the rewritten pool file: its rows, its lake, a new build, the API
    with warehouse_connect(pool, read_only=True) as con:
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
    assert erasure_marks.pending(s, "global.eu", "recommender")[-1] == "tenant acme purged"  # after the user erasures
    r = train_global("recommender", "eu", "features", s)
    assert r.get("skipped") and erasure_marks.pending(s, "global.eu", "recommender"), r
    with pytest.raises(TenantError, match="never reused"):
        TenantStore(s).add(Tenant("initech", "us", isolation="silo", share_data=False))
