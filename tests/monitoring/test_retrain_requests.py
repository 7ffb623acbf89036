"""A drift retrain request says how its train run ended for the tenant: each kind's version promoted or refused."""

from __future__ import annotations

import json

from ml.core import control_db
from ml.core.tenants import Tenant, TenantStore
from ml.monitoring import decisions
from ml.ops.cli import main


def _request(settings, tenant_id: str, train_run_id: str) -> None:
    """A request as ``decisions.decide`` inserts it."""
    with control_db.connect(settings) as con:
        con.execute(
            "insert into retrain_requests (tenant_id, kinds, requested_at, monitor_run, train_run_id, reason,"
            " report_paths, status) values (?, ?, ?, ?, ?, ?, ?, 'requested')",
            [tenant_id, '["recommender", "churn"]', "2026-12-06T13:00:00+00:00", "m", train_run_id, "drift", "[]"],
        )


def test_a_closed_request_says_what_its_train_run_did_for_the_tenant(settings, capsys, monkeypatch):
    for tenant_id in ("acme", "globex", "hooli"):
        TenantStore(settings).add(Tenant(tenant_id, "eu"))
        _request(settings, tenant_id, "drift__m")
    results = [
        {"tenant_id": "acme", "kind": "recommender", "version": "2", "promoted": False, "reason": "not above"},
        {"tenant_id": "acme", "kind": "churn", "version": "4", "skipped": "unchanged since v4"},  # the champion's
        {"tenant_id": "globex", "kind": "recommender", "error": "ValueError: boom"},
        {"tenant_id": "global.eu", "kind": "recommender", "version": "7", "promoted": True},  # another model's
    ]
    assert decisions.close_requests("drift__m", results, settings) == 3
    ended = {r["tenant_id"]: (r["status"], r["outcome"]) for r in decisions.retrain_history(None, settings)}
    assert ended == {
        "acme": ("done", "recommender v2 refused (kept as challenger): not above; churn skipped: unchanged since v4"),
        "globex": ("failed", "recommender failed"),
        "hooli": ("failed", "its training never ran"),  # its chunk's task failed before it
    }
    assert main(["monitor", "requests", "--tenant", "acme"]) == 0
    shown = capsys.readouterr().out
    assert "acme: requested 2026-12-06T13:00 UTC for recommender, churn; done 20" in shown, shown
    assert "\n  outcome: recommender v2 refused (kept as challenger): not above; churn skipped: " in shown, shown
    assert main(["monitor", "requests", "--json"]) == 0
    assert [r["outcome"] for r in json.loads(capsys.readouterr().out)][0].startswith("recommender v2 refused")
    # on a narrow terminal a long outcome or reason wraps at words under its label, a run id stays whole
    from ml.ops.cli.progress import out

    monkeypatch.setattr(out, "width", 40)
    assert main(["monitor", "requests", "--tenant", "acme"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  outcome: recommender v2 refused (kept", lines
    assert lines[2].startswith("      as challenger): not above;"), lines
    assert all(len(line) <= 40 or " " not in line.strip() for line in lines[1:]), lines  # (the header is one line)
    assert decisions.outcome([{"tenant_id": "acme", "skipped": "features unhealthy"}]) == "skipped: features unhealthy"
