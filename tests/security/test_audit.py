"""The audit log as someone covering their tracks meets it: what it records, and what
``tenantflow audit verify`` finds after an edit, a deletion or a cut-off end."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from ml.core import audit, control_db
from ml.core.tenants import Tenant, TenantStore
from ml.models import audit as model_audit
from ml.serving.keys import create_key, revoke_key
from ml.serving.traffic import set_traffic_split


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TENANTFLOW_HOME": str(settings.home)}
    return subprocess.run(
        [sys.executable, "-m", "ml.ops.cli", "audit", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _control_plane_changes(settings) -> None:
    store = TenantStore(settings)
    store.add(Tenant("acme", "eu"))
    store.add(Tenant("globex", "us", isolation="silo", share_data=False))
    store.add(Tenant("acme", "eu", quota_requests_per_minute=7), replace=True)
    store.add(Tenant("acme", "eu", quota_requests_per_minute=7, seen_items="allow"), replace=True)
    record, _ = create_key("acme", "ci", settings)
    revoke_key("acme", record.key_id, settings)
    set_traffic_split("acme", "recommender", 10, settings)
    model_audit.record("recommender", "acme", "promote", None, "1", "first champion", settings)
    store.remove("globex")


def test_every_control_plane_change_is_an_entry_of_one_chain(settings):
    _control_plane_changes(settings)
    log = audit.entries(settings)
    assert [(e.tenant_id, e.action) for e in log] == [
        ("acme", "tenant_add"),
        ("globex", "tenant_add"),
        ("acme", "quota_change"),
        ("acme", "tenant_change"),
        ("acme", "key_create"),
        ("acme", "key_revoke"),
        ("acme", "traffic_split"),
        ("acme", "promote"),
        ("globex", "tenant_remove"),
    ]
    assert set(log[2].detail) == {"quota_requests_per_minute"} and log[2].detail["quota_requests_per_minute"][1] == 7
    assert log[3].detail == {"seen_items": ["exclude", "allow"]}
    assert log[4].subject == log[5].subject  # the key id, never the key
    assert [e.prev_hash for e in log[1:]] == [e.hash for e in log[:-1]]
    assert audit.verify(settings).ok
    ok = _cli(settings, "verify")
    assert ok.returncode == 0 and f"{len(log)} entries" in ok.stdout


def test_the_table_refuses_updates_and_deletes(settings):
    _control_plane_changes(settings)
    with sqlite3.connect(settings.stores.control_db) as con:
        for sql in ("update audit_log set actor = 'someone else'", "delete from audit_log where id = 3"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)


def _bypass(settings, *statements: str) -> None:
    """What an intruder with the file does: drop the triggers, change rows."""
    with sqlite3.connect(settings.stores.control_db) as con:
        con.execute("drop trigger audit_log_no_update")
        con.execute("drop trigger audit_log_no_delete")
        for sql in statements:
            con.execute(sql)


@pytest.mark.parametrize(
    ("statements", "found"),
    [
        (["update audit_log set detail = '{\"challenger_percent\":0.0}' where action = 'traffic_split'"], "entry 7"),
        (["delete from audit_log where action = 'key_revoke'"], "entries 6..6 are missing"),
        (["delete from audit_log where id = (select max(id) from audit_log)"], "cut off the end"),
        (["update audit_log set tenant_id = 'initech' where id = 1"], "entry 1 "),
    ],
    ids=["edited", "deleted", "cut_off", "reassigned"],
)
def test_verify_finds_every_edit_and_deletion(settings, statements, found):
    _control_plane_changes(settings)
    _bypass(settings, *statements)
    result = audit.verify(settings)
    assert not result.ok and any(found in p for p in result.problems), result.problems
    cli = _cli(settings, "verify")
    assert cli.returncode == 1 and "TAMPERED" in cli.stderr and found in cli.stderr


def test_export_writes_json_lines_with_their_hashes(settings, tmp_path):
    _control_plane_changes(settings)
    out = tmp_path / "audit.jsonl"
    assert _cli(settings, "export", "--tenant", "globex", "--out", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["action"] for r in rows] == ["tenant_add", "tenant_remove"]
    assert all(len(r["hash"]) == 64 and len(r["prev_hash"]) == 64 for r in rows)
    later = _cli(settings, "export", "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout == ""


def test_a_home_with_the_old_audit_table_is_chained_on_upgrade(tmp_path, monkeypatch):
    from ml.core.settings import Settings

    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "control.sqlite") as con:
        for number, _, sql in control_db.migrations("control"):
            if number < 7:
                con.executescript(sql)
        con.execute("pragma user_version = 6")
        for v in ("1", "2"):
            con.execute(
                "insert into model_audit (at, actor, kind, tenant_id, action, from_version, to_version, reason)"
                " values ('2026-01-0' || ?, 'gate', 'churn', 'acme', 'promote', null, ?, 'won')",
                (v, v),
            )
    monkeypatch.setenv("TENANTFLOW_HOME", str(home))
    settings = Settings()
    moves = model_audit.entries(settings, "acme", "churn")
    assert [(m.action, m.to_version, m.reason) for m in moves] == [("promote", "1", "won"), ("promote", "2", "won")]
    assert audit.verify(settings).ok
