"""Which Evidently reports a tenant's status names: every report that shows a drifted check, a feature check's
per-entity reports (its columns judged over items or users) among them; none of an undrifted check."""

from __future__ import annotations

from datetime import date

from ml.monitoring.results import CheckResult, drifted_reports, latest_results, summarise, write
from ml.ops.status import _monitoring_lines, report_lines


def test_a_drifted_feature_checks_item_and_user_reports_are_named_and_an_undrifted_checks_are_not(settings):
    folder = settings.stores.monitoring_reports.root / "tenant=acme"
    folder.mkdir(parents=True)
    head, items, users, events = (folder / f"{n}.html" for n in ("recommender", "recommender.items", "users", "events"))
    for report in (head, items, events):  # users' report is not written: a path to nothing is not named
        report.write_text("<!doctype html>")

    def row(check: str, kind: str, metric: str, drifted: bool, report, tenant: str = "acme") -> CheckResult:
        return CheckResult(tenant, check, kind, metric, 0.5, 0.1, drifted, "ok", report_path=str(report))

    rows = [
        row("feature_drift", "recommender", "share_drifted_columns", True, head),
        row("feature_drift", "recommender", "column:item_popularity", True, items),
        row("feature_drift", "recommender", "column:user_sessions", True, users),
        row("feature_drift", "recommender", "column:user_item_clicks", False, head),
        row("prediction_drift", "recommender", "score", True, head),
        row("data_drift", "events", "drifted_columns", False, events),  # not drifted: its report is not named
        # globex's feature check judged item columns alone: no report of its own was written
        row("feature_drift", "recommender", "share_drifted_columns", True, folder / "gone.html", "globex"),
        row("feature_drift", "recommender", "column:item_popularity", True, items, "globex"),
        row("feature_drift", "recommender", "column:item_price", True, items, "initech"),  # column rows alone
    ]
    # a live check: it writes no report
    live = CheckResult("acme", "performance", "recommender", "live_hit_rate_at_10", 0.3, 0.6, True, "ok", "batch of x")
    path = settings.stores.warehouse_file("eu/pool")
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, [*rows, live], [], date(2026, 11, 20))

    drift = latest_results(settings, "acme", "eu/pool")
    assert drift is not None
    reports = {(c["check"], c["kind"]): c["reports"] for c in drift["checks"]}
    assert reports[("feature_drift", "recommender")] == [str(head), str(items)]
    assert reports[("prediction_drift", "recommender")] == [str(head)] and reports[("data_drift", "events")] == []
    assert reports[("performance", "recommender")] == []
    assert drifted_reports(drift) == [str(head), str(items)] and drift["report_path"] == str(head)
    # the report to open first is one that exists; a day of column rows alone judges nothing
    globex = latest_results(settings, "globex", "eu/pool")
    assert globex is not None and globex["checks"][0]["reports"] == [str(items)] == [globex["report_path"]]
    assert latest_results(settings, "initech", "eu/pool") is None
    # the monitor's verdict (what a retrain request carries) names the same reports, as it judged them; a live
    # check without a report adds none, and its reason keeps its threshold apart from its detail
    verdict = summarise([*(r for r in rows if r.tenant_id == "acme"), live])
    assert verdict["reports"] == sorted([str(head), str(items)])
    assert "performance/recommender live_hit_rate_at_10=0.300 (threshold 0.600): batch of x" in verdict["reasons"]
    assert report_lines([{"tenant_id": "acme", "drift": drift}]) == [
        f"acme feature_drift/recommender, prediction_drift/recommender: {head}",
        f"acme feature_drift/recommender: {items}",
    ]
    # the table's cell points below it, and says which drifted check has no report there
    row = {"tenant_id": "acme", "drift": drift, "ingest_warnings": [], "quarantined": {}}
    assert "reports: below the table (performance/recommender: no report)" in _monitoring_lines(row)
