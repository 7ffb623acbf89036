"""Faults the API must ride out, caused for real: hot swaps under load, MLflow down, a broken
model version, SIGKILL while acknowledging events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from ml.core.layout import LAKE_FILE
from ml.data.ingest.run import ingest_tenants
from ml.models import registry, train
from tests.served import free_port, running_api
from tests.serving.test_api import _users


def _load(api, key: str, users: list[str], stop: threading.Event, out: list) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as c:
        i = 0
        while not stop.is_set():
            r = c.post(
                "/v1/recommendations",
                json={"user_id": users[i % len(users)], "k": 10},
                headers={"Authorization": f"Bearer {key}"},
            )
            out.append((time.monotonic(), r.status_code, r.json().get("model", {}) if r.status_code == 200 else r.text))
            i += 1


def test_a_moved_alias_is_served_without_a_restart_or_a_failed_request(served_world):
    settings, keys = served_world
    old = str(registry.version_by_alias("recommender.globex", "champion", settings).version)
    new = train.train_tenant("recommender", "globex", "test: hot swap", settings, force=True)["version"]
    with running_api(settings) as api:
        stop, answers = threading.Event(), []
        threads = [
            threading.Thread(target=_load, args=(api, keys["globex"], _users(settings, "globex"), stop, answers))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)
        registry.promote("recommender", "globex", new, "test: promoted by hand for the hot swap", settings)
        deadline = time.monotonic() + 20
        while not any(isinstance(m, dict) and m.get("version") == new for _, _, m in answers[-20:]):
            assert time.monotonic() < deadline, "the API never served the new champion"
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
    assert len(answers) > 100
    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:5]
    versions = [m["version"] for _, _, m in answers]
    assert versions[0] == old and versions[-1] == new and set(versions) == {old, new}
    registry.rollback("recommender", "globex", "test: back to the original champion", settings)


def _mlflow_server(settings, port: int) -> subprocess.Popen:
    uri = f"sqlite:///{settings.stores.mlflow_db}"
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    argv = [mlflow, "server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(settings.home / f"mlflow-{port}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job consumers
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
        time.sleep(0.5)


def test_mlflow_down_keeps_serving_and_a_restart_serves_the_disk_copy(served_world):
    settings, keys = served_world
    port = free_port()
    server = _mlflow_server(settings, port)
    user = _users(settings, "initech")[0]
    champ = str(registry.version_by_alias("recommender.initech", "champion", settings).version)
    try:
        env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        with running_api(settings, **env) as api:
            assert api.get("/readyz", ops=True).json()["mlflow_reachable"] is True
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            api.wait_ready(check=lambda b: b["mlflow_reachable"] is False)
            for _ in range(20):  # several refresh rounds against a dead MLflow
                r = api.post("/v1/recommendations", keys["initech"], {"user_id": user})
                assert r.status_code == 200 and r.json()["model"]["version"] == champ, r.text
                time.sleep(0.1)
        # a fresh process while MLflow is still down: the models it served last come from disk
        with running_api(settings, **env) as api:
            body = api.post("/v1/recommendations", keys["initech"], {"user_id": user}).json()
            assert body["arm"] == "champion" and body["model"]["version"] == champ
            assert api.get("/readyz", ops=True).json()["mlflow_reachable"] is False
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def _watchers(pid: int) -> list[psutil.Process]:
    """The alias watcher processes (multiprocessing spawn children) of the API process."""
    out = []
    for child in psutil.Process(pid).children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                out.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):  # killed, not yet reaped by the server
            continue
    return out


def test_the_alias_watcher_is_replaced_when_it_dies_and_ends_with_the_server(served_world):
    settings, keys = served_world
    user = _users(settings, "acme")[0]
    with running_api(settings) as api:
        (first,) = _watchers(api.proc.pid)
        first.kill()
        deadline = time.monotonic() + 60
        while not [w for w in _watchers(api.proc.pid) if w.pid != first.pid]:
            assert time.monotonic() < deadline, "no new alias watcher after the first was killed"
            time.sleep(0.2)
        r = api.post("/v1/recommendations", keys["acme"], {"user_id": user})
        assert r.status_code == 200 and r.json()["arm"] == "champion", r.text
        api.wait_ready(check=lambda b: b["mlflow_reachable"] is True)
        (second,) = _watchers(api.proc.pid)
        os.kill(api.proc.pid, signal.SIGKILL)  # no shutdown hook runs: the watcher must notice by itself
        api.proc.wait()
        second.wait(timeout=30)  # raises psutil.TimeoutExpired if it outlives the server


def test_a_version_that_fails_to_load_never_replaces_the_working_one(served_world):
    settings, keys = served_world
    c = registry.client(settings)
    name = "recommender.initech"
    champ = registry.version_by_alias(name, "champion", settings)
    broken = c.create_model_version(
        name, source=str(settings.home / "no-such-model"), run_id=champ.run_id, tags=dict(champ.tags)
    )
    user = _users(settings, "initech")[0]
    with running_api(settings) as api:
        registry.promote("recommender", "initech", broken.version, "test: a version whose files are gone", settings)
        try:
            api.wait_ready(check=lambda b: any(k.startswith("initech.recommender") for k in b["model_errors"]))
            body = api.post("/v1/recommendations", keys["initech"], {"user_id": user}).json()
            assert body["model"]["version"] == str(champ.version)
            assert (
                f"v{broken.version}"
                in api.get("/readyz", ops=True).json()["model_errors"]["initech.recommender.champion"]
            )
        finally:
            registry.promote("recommender", "initech", champ.version, "test: back to the working champion", settings)


def _torn(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flipped(data: bytes) -> bytes:  # one byte changed inside an encrypted file: it no longer decrypts
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    ("tenant", "region", "damage", "said"),
    [("acme", "eu", _torn, ""), ("initech", "us", _flipped, "TenantKeyError")],
    ids=["pool-torn", "silo-flipped"],
)
def test_a_restart_falls_back_to_the_newest_published_snapshot_that_loads(served_world, tenant, region, damage, said):
    """A tenant's CURRENT names a newer snapshot whose ranking mart is damaged (a disk fault: acme's torn, initech's
    with a byte changed, which its key then does not decrypt: the snapshot's fault, not its key's): a fresh API
    serves the tenant from the older good one, says so in /readyz, and takes a good new snapshot when CURRENT moves
    to it."""
    settings, keys = served_world
    store = settings.stores.published
    pointer = store.pointer(region, tenant)
    good = json.loads(pointer.read_text())
    torn_id = "f" * 16
    torn = store.snapshot_dir(region, tenant, torn_id)
    shutil.copytree(store.snapshot_dir(region, tenant, good["snapshot_id"]), torn)
    mart = torn / "ranking_candidates.parquet"
    mart.write_bytes(damage(mart.read_bytes()))
    newer = good | {"snapshot_id": torn_id, "published_at": "2999-01-01T00:00:00Z"}
    (torn / store.meta_name).write_text(json.dumps(newer))
    user = _users(settings, tenant)[0]
    try:
        pointer.write_text(json.dumps(newer))
        with running_api(settings) as api:
            detail = api.get("/readyz", ops=True).json()
            assert detail["ready"] and torn_id in detail["feature_errors"][tenant]
            assert said in detail["feature_errors"][tenant], detail["feature_errors"]
            assert detail["feature_fallbacks"][tenant].startswith(f"serving {good['snapshot_id']}")
            assert api.post("/v1/recommendations", keys[tenant], {"user_id": user}).status_code == 200
            pointer.write_text(json.dumps(good))  # a good snapshot is published again
            api.wait_ready(check=lambda b: tenant not in b["feature_fallbacks"] and tenant not in b["feature_errors"])
    finally:
        pointer.write_text(json.dumps(good))
        shutil.rmtree(torn, ignore_errors=True)


def _take_key_away(key_file: Path) -> None:
    """The ``file`` provider cannot read the tenant's key (a folder in its place): a ``KeyProviderError``, as a KMS
    that does not answer."""
    key_file.unlink()
    key_file.mkdir()


def _give_key_back(key_file: Path, key: bytes) -> None:
    if key_file.is_dir():
        key_file.rmdir()
    key_file.write_bytes(key)
    key_file.chmod(0o600)


@pytest.mark.parametrize("current", ["good", "missing-a-mart"])
def test_a_snapshot_its_key_did_not_open_is_loaded_once_the_key_answers(served_world, current):
    """initech (silo) starts with its key file unreadable (a key provider down): its snapshot does not load, and is
    not taken for broken (snapshots that are, stay so until ``CURRENT`` moves): once the key answers again, the running
    API loads it and serves initech, without a restart or a new publish. When ``CURRENT`` names a snapshot that is
    broken itself (a mart missing), the older one the restart fell back to, which waited on the key, is loaded then;
    a broken snapshot between them is not loaded (and its traceback logged) again at every retry of the key."""
    settings, keys = served_world
    key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=initech.key"
    key = key_file.read_bytes()
    user = _users(settings, "initech")[0]
    store = settings.stores.published
    pointer = store.pointer("us", "initech")
    good = json.loads(pointer.read_text())
    broken_id, between_id = "e" * 16, "c" * 16
    broken = {sid: store.snapshot_dir("us", "initech", sid) for sid in (broken_id, between_id)}
    if current != "good":
        for sid, published_at in ((between_id, "2998-01-01T00:00:00Z"), (broken_id, "2999-01-01T00:00:00Z")):
            shutil.copytree(store.snapshot_dir("us", "initech", good["snapshot_id"]), broken[sid])
            (broken[sid] / "user_features.parquet").unlink()  # (the first mart read: before the key is asked for)
            newer = good | {"snapshot_id": sid, "published_at": published_at}
            (broken[sid] / store.meta_name).write_text(json.dumps(newer))
        pointer.write_text(json.dumps(newer))
    _take_key_away(key_file)
    try:
        with running_api(settings) as api:
            detail = api.wait_ready(check=lambda b: "initech" in b["feature_errors"])
            said = "KeyUnavailableError" if current == "good" else f"{broken_id}: FileNotFoundError"
            assert said in detail["feature_errors"]["initech"], detail["feature_errors"]
            assert "initech" not in detail["feature_fallbacks"], "an older snapshot needs the same key"
            time.sleep(4)  # the key is retried after 1 s, then 2 s, ...
            assert api.log.read_text().count(f"could not load published features {between_id}") <= 1, api.log
            _give_key_back(key_file, key)
            if current == "good":
                api.wait_ready(check=lambda b: "initech" not in b["feature_errors"])
            else:
                detail = api.wait_ready(check=lambda b: "initech" in b["feature_fallbacks"])
                assert detail["feature_fallbacks"]["initech"].startswith(f"serving {good['snapshot_id']}"), detail
            r = api.post("/v1/recommendations", keys["initech"], {"user_id": user})
            assert r.status_code == 200 and r.json()["items"], r.text
    finally:
        _give_key_back(key_file, key)
        pointer.write_text(json.dumps(good))
        for folder in broken.values():
            shutil.rmtree(folder, ignore_errors=True)


def test_a_fallback_names_the_current_snapshot_while_a_newer_one_waits_on_its_key(served_world):
    """initech (silo) is served an older snapshot after a restart (its CURRENT one is missing a mart); a newer good
    snapshot is then published while its key provider is down: /readyz names that newer one as the current snapshot
    that does not load (not the broken one before it) and the older one serves on, as it does when CURRENT goes back
    to the broken one and forth again (the newer one's key problem is said again, a new wait); once the key answers,
    the newer one is served and the fallback is gone."""
    settings, keys = served_world
    key_file = settings.home.with_name(settings.home.name + "-keys") / "tenant=initech.key"
    key = key_file.read_bytes()
    store = settings.stores.published
    pointer = store.pointer("us", "initech")
    good = json.loads(pointer.read_text())
    made = {}

    def publish(sid: str, published_at: str) -> None:
        made[sid] = store.snapshot_dir("us", "initech", sid)
        shutil.copytree(store.snapshot_dir("us", "initech", good["snapshot_id"]), made[sid])
        meta = json.dumps(good | {"snapshot_id": sid, "published_at": published_at})
        (made[sid] / store.meta_name).write_text(meta)
        if sid == broken_id:
            (made[sid] / "user_features.parquet").unlink()
        pointer.write_text(meta)

    broken_id, newer_id = "e" * 16, "d" * 16
    user = _users(settings, "initech")[0]
    try:
        publish(broken_id, "2999-01-01T00:00:00Z")
        with running_api(settings) as api:
            detail = api.wait_ready(check=lambda b: "initech" in b["feature_fallbacks"])
            assert detail["feature_fallbacks"]["initech"].startswith(f"serving {good['snapshot_id']}"), detail
            assert detail["feature_fallbacks"]["initech"].endswith(f"{broken_id} does not load"), detail
            _take_key_away(key_file)
            publish(newer_id, "2999-01-02T00:00:00Z")
            detail = api.wait_ready(  # (the error is set before the note: both, or a poll may fall between)
                check=lambda b: (
                    newer_id in b["feature_errors"].get("initech", "")
                    and b["feature_fallbacks"].get("initech", "").endswith(f"{newer_id} does not load")
                )
            )
            assert "KeyUnavailableError" in detail["feature_errors"]["initech"], detail["feature_errors"]
            fallback = detail["feature_fallbacks"]["initech"]
            assert fallback.startswith(f"serving {good['snapshot_id']}"), fallback
            assert fallback.endswith(f"the current snapshot {newer_id} does not load"), fallback
            assert api.post("/v1/recommendations", keys["initech"], {"user_id": user}).status_code == 200
            for sid in (broken_id, newer_id):  # CURRENT back to the broken one, and to the one that waits again
                pointer.write_text((made[sid] / store.meta_name).read_text())
                api.wait_ready(
                    check=lambda b, sid=sid: (
                        b["feature_errors"].get("initech", "").startswith(f"{sid}:")
                        and b["feature_fallbacks"].get("initech", "").endswith(f"{sid} does not load")
                    )
                )
            said = f"could not load published features: {newer_id}: KeyUnavailableError"
            assert api.log.read_text().count(said) == 2, "named again when CURRENT names it again"
            _give_key_back(key_file, key)
            api.wait_ready(
                check=lambda b: "initech" not in b["feature_fallbacks"] and "initech" not in b["feature_errors"]
            )
    finally:
        _give_key_back(key_file, key)
        pointer.write_text(json.dumps(good))
        for folder in made.values():
            shutil.rmtree(folder, ignore_errors=True)


def test_every_acknowledged_event_reaches_the_lake_once_despite_sigkill(served_world):
    settings, keys = served_world
    acked: list[str] = []
    sent: list[str] = []
    with running_api(settings) as api:

        def stream() -> None:
            with httpx.Client(base_url=api.base, timeout=10) as c:
                for b in range(100_000):
                    ids = [f"kill-{b:05d}-{i:02d}" for i in range(50)]
                    sent.extend(ids)
                    body = {
                        "events": [
                            {
                                "event_id": e,
                                "user_id": f"u{i:06d}",
                                "item_id": "i000001",
                                "event_type": "view",
                                "event_at": datetime.now(UTC).isoformat(),
                                "dwell_seconds": 12.5,
                            }
                            for i, e in enumerate(ids)
                        ]
                    }
                    try:
                        r = c.post("/v1/events", json=body, headers={"Authorization": f"Bearer {keys['acme']}"})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        acked.extend(ids)

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(2.0)
        os.killpg(api.proc.pid, signal.SIGKILL)
        t.join(30)
        api.proc.wait()
    assert len(acked) >= 500, "the stream was running when the service was killed"
    today = datetime.now(UTC).date()
    ingest_tenants(["acme"], today, today + timedelta(days=1), settings)
    lake = settings.stores.lake.day_dir("eu", "acme", today) / LAKE_FILE
    ids = [e for e in pq.read_table(lake, columns=["event_id"]).column("event_id").to_pylist() if e.startswith("kill-")]
    assert len(ids) == len(set(ids)), "an event landed twice"
    assert set(acked) <= set(ids), f"{len(set(acked) - set(ids))} acknowledged events are missing"
    assert set(ids) <= set(sent)
