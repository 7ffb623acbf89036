"""Drift and decay checks on a world whose last week arrived after training, and the decisions."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.core import control_db, lineage
from ml.core.prediction_log import ServedLog
from ml.core.settings import Settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import connect as warehouse_connect
from ml.data import snapshots
from ml.models import audit, registry, train
from ml.models.champion import Champion
from ml.models.kinds import all_kinds, get_kind
from ml.models.kinds._recommender_live import live_metrics as live_recommendation_metrics
from ml.models.kinds.churn import live_metrics as live_churn_metrics
from ml.monitoring import decisions, rollback, run, windows
from ml.monitoring import policy as policies
from ml.monitoring.checks import MonitoredChampion, _performance, check_tenant
from ml.monitoring.policy import MonitorPolicy
from ml.monitoring.results import CheckResult
from ml.monitoring.windows import TenantWindows
from ml.serving.prediction_log import PredictionLog
from tests.monitoring.conftest import DRIFTED, STATIONARY
from tests.world import END

ACME = Tenant("acme", "eu")


@pytest.fixture(scope="module")
def monitor_run(monitored):
    """Monitor once, newcat's prediction log holding answers the API gave after the features' cutoff
    (read by its live metrics, not judged yet); (settings, warehouses, per-tenant summaries, the
    lineage recorded: (inputs, outputs), as the monitor DAG's OpenLineage events name them).
    The log is removed after the module's tests."""
    settings, whs = monitored
    api_log = PredictionLog(settings, interval=3600)  # the API's writer, flushed when closed
    answer = {"at": f"{END + timedelta(days=3)}T09:00:00+00:00", "tenant_id": "newcat", "region": "eu"}
    for user in ("u000001", "u000002"):
        api_log.append(
            answer | {"endpoint": "recommendations", "user_id": user, "items": ["i000001"], "arm": "champion"}
        )
    api_log.close()
    lineage.drain()
    summaries = {}
    for wh in whs:
        summaries |= run.monitor_warehouse(wh, settings)["tenants"]
    yield settings, whs, summaries, lineage.drain()
    shutil.rmtree(settings.stores.prediction_log.tenant_dir("eu", "newcat"))


@pytest.fixture(scope="module")
def checked(monitor_run):
    """(settings, warehouses, per-tenant summaries) of the module's monitoring run."""
    return monitor_run[:3]


def _rows(settings, wh, tenant_id: str) -> pd.DataFrame:
    con = warehouse_connect(wh.path(settings), read_only=True)
    try:
        return con.execute("select * from monitoring where tenant_id = ?", [tenant_id]).df()
    finally:
        con.close()


def _clear_requests(settings) -> None:
    with control_db.connect(settings) as con:
        con.execute("delete from retrain_requests")


def test_each_injected_drift_kind_is_caught(checked):
    settings, whs, s = checked
    assert all(s[t]["drifted"] for t in DRIFTED), {t: s[t] for t in DRIFTED}
    wh = whs[0]
    shorter = _rows(settings, wh, "shorter").set_index("metric")
    assert shorter.loc["column:dwell_seconds", "drifted"] and not shorter.loc["column:device", "drifted"]
    newcat = _rows(settings, wh, "newcat").set_index("metric")
    assert newcat.loc["column:topic", "drifted"] and "ai-shorts" in newcat.loc["column:topic", "detail"]
    # the taste shift makes the served recommendations miss: live HitRate@10 far below the holdout's
    shifted = _rows(settings, wh, "shifted")
    perf = shifted[(shifted["check"] == "performance") & (shifted["kind"] == "recommender")].iloc[0]
    assert perf["drifted"] and perf["value"] < perf["threshold"], perf.to_dict()
    assert "performance/recommender:live_hit_rate_at_10" in s["shifted"]["checks"]


def test_false_alarm_rate_on_stationary_tenants_is_at_most_ten_percent(checked):
    _, _, s = checked
    alarms = [t for t in STATIONARY if s[t]["drifted"]]
    assert len(STATIONARY) >= 10 and len(alarms) / len(STATIONARY) <= 0.10, {t: s[t]["reasons"] for t in alarms}
    # and they were judged, not waved through for lack of data (except the kinds scored per user:
    # 300 users a tenant here, under min_rows for their feature checks)
    per_user = ("churn", "engagement")
    assert all(all(i.split()[1].rstrip(":") in per_user for i in s[t]["insufficient"]) for t in STATIONARY), s[
        "steady01"
    ]


def test_results_table_reports_and_mlflow_link(checked):
    settings, whs, s = checked
    rows = _rows(settings, whs[0], "steady01")
    head = rows[~rows["metric"].str.startswith("column:")]
    assert {"data_drift", "feature_drift", "prediction_drift", "performance"} <= set(head["check"])
    ok = head[head["status"] == "ok"]
    assert ok["value"].notna().all() and ok["threshold"].notna().all() and ok["drifted"].notna().all()
    assert (rows["current_end"] > rows["reference_end"]).all()
    for path in s["newcat"]["reports"]:
        assert path.endswith(".html") and "tenant=newcat" in path
        assert "<!doctype html>" in Path(path).read_text()[:300].lower()
    champ = registry.version_by_alias("recommender.newcat", registry.CHAMPION, settings)
    run_id = champ.tags.get("run_id") or champ.run_id
    run = registry.client(settings).get_run(run_id)
    assert run.data.tags["monitoring.report.events"].endswith("events.html")
    arts = [a.path for a in registry.client(settings).list_artifacts(run_id, "monitoring")]
    assert arts, "reports are logged on the champion's run"
    # the status contract's drift part
    from ml.ops.status import format_table, report_lines, status

    rows = status(settings, ["newcat", "steady01"])
    st = {r["tenant_id"]: r["drift"] for r in rows}
    assert st["newcat"]["drifted"] is True and st["newcat"]["report_path"].endswith(".html")
    assert st["steady01"]["last_checked_at"] and st["newcat"]["last_retrain_reason"] == "test"
    # the table: a count of columns whole, naming them; the report's path whole on its own line below
    table = format_table(rows, width=1000)
    assert re.search(r"drifted_columns=\d+: [^(;]*\btopic\b[^(;]* \(threshold 1\)", table), table
    below = [line for line in table.splitlines() if line.startswith(("newcat ", "steady01 "))]
    flagged = {t: [c for c in st[t]["checks"] if c["drifted"] and c["status"] == "ok"] for t in st}
    reported = [c for c in flagged["newcat"] if c["report_path"]]  # each with the report it shows
    assert reported and all(f"{c['check']}/{c['kind']}" in " ".join(below) for c in reported), below
    assert any(line.startswith("newcat ") and line.endswith(f": {st['newcat']['report_path']}") for line in below)
    assert "reports: below the table" in table and any(x.startswith("steady01 ") for x in below) == bool(
        flagged["steady01"]
    ), table
    # every report that shows a drifted check is listed: a feature check's columns judged over items or users
    # are in reports of their own (recommender.items.html), read from the column rows
    for t in DRIFTED:
        db = _rows(settings, whs[0], t)
        db = db[db["checked_on"] == db["checked_on"].max()]  # the latest check, which status reads
        hit = db[db["drifted"].fillna(False).astype(bool) & db["report_path"].notna()]
        checks = set(hit[~hit["metric"].str.startswith("column:")][["check", "kind"]].itertuples(index=False))
        shown = [p for c, k, p in hit[["check", "kind", "report_path"]].itertuples(index=False) if (c, k) in checks]
        lines = [line for line in report_lines(status(settings, [t])) if line.startswith(f"{t} ")]
        assert {p for p in shown if Path(p).exists()} == {line.rsplit(": ", 1)[1] for line in lines}, (t, lines)


def test_the_lineage_links_the_champion_judged_what_was_read_and_the_reports(monitor_run):
    """What the monitor DAG's OpenLineage events name for one tenant: the champion version judged,
    its snapshot (the reference), the warehouse's current window and live-metric relations, the
    API's prediction log; the monitoring tables and the report folder written. Each names its tenant."""
    from ml.ops.lineage import to_input, to_output

    settings, whs, s, (inputs, outputs) = monitor_run
    pool = f"duckdb://{next(wh for wh in whs if 'newcat' in wh.tenants).path(settings).resolve()}"
    assert all(d.tenants and set(d.tenants) <= set(s) for d in [*inputs, *outputs])
    read = [d for d in inputs if "newcat" in d.tenants]
    # every kind's champion: the recommender's, and this young tenant's own baselines for the others
    champs = {k.name: registry.version_by_alias(f"{k.name}.newcat", registry.CHAMPION, settings) for k in all_kinds()}
    models = {(f"{k}.newcat", str(v.version)) for k, v in champs.items() if v is not None}
    assert ("recommender.newcat", str(champs["recommender"].version)) in models
    assert {(d.name, d.version) for d in read if d.layer == "model"} == models
    [snap] = [d for d in read if d.layer == "snapshot"]
    reference = snapshots.load(settings, "eu", "newcat", snap.version).reference(get_kind("recommender").serving_mart)
    assert snap.name == str(settings.stores.snapshots.tenant_dir("eu", "newcat").resolve()) and reference.exists()
    relations = {d.name for d in read if d.namespace == pool}
    assert {"main.stg_lake__events", "main.int_feature_cutoffs", "main.ranking_candidates"} <= relations
    assert {"main.user_features", "predictions.recommendations", "main.int_user_activity__daily"} <= relations
    [log] = [d for d in read if d.layer == "predictions"]
    assert log.name == str(settings.stores.prediction_log.tenant_dir("eu", "newcat").resolve())
    written = [d for d in outputs if "newcat" in d.tenants]
    assert {d.name for d in written if d.namespace == pool} == {"main.monitoring", "main.monitoring_live_metrics"}
    [reports] = [d for d in written if d.layer == "reports"]
    assert s["newcat"]["reports"] and all(
        Path(r).parent == Path(reports.name) / reports.partitions[0] for r in s["newcat"]["reports"]
    )
    own = [d for d in [*read, *written] if d.layer in ("model", "snapshot", "predictions", "reports")]
    assert len(own) == 3 + len(models) and all(d.tenants == ("newcat",) for d in own)
    tags = [{(t.key, t.value) for t in e.facets["tags"].tags} for e in [*map(to_input, read), *map(to_output, written)]]
    assert all(("tenant", "newcat") in t for t in tags)


_RELATIONS = (
    "select schema_name || '.' || table_name from duckdb_tables() "
    "union all select schema_name || '.' || view_name from duckdb_views()"
)


def test_each_kinds_live_metrics_read_only_the_relations_it_names(checked):
    """On a database holding only the relations a kind names (``LiveMonitoring.reads``, what the
    lineage says its live metrics read), with one tenant's rows, its live metrics are what they are on
    the warehouse: it names every relation it reads."""
    settings, whs, _ = checked
    tenant, path = TenantStore(settings).get("steady03"), whs[0].path(settings)  # an engagement champion scored it
    con = warehouse_connect(path, read_only=True)
    try:
        cutoff = windows._serving_cutoff(con, tenant.tenant_id)
        on_warehouse = {k.name: k.live.metrics(con, tenant, cutoff, None) for k in all_kinds()}
        existing = {r for (r,) in con.execute(_RELATIONS).fetchall()}
    finally:
        con.close()
    assert on_warehouse["recommender"] and on_warehouse["engagement"], "judged batches to compare"
    for kind in all_kinds():
        only = duckdb.connect()
        only.execute(f"attach '{path}' as warehouse (read_only)")
        for relation in kind.live.reads:
            name = relation if "." in relation else f"main.{relation}"
            if name in existing:  # a kind's predictions exist once a champion of it scored
                only.execute(f"create schema if not exists {name.split('.')[0]}")
                only.execute(f"create table {name} as from warehouse.{name} where tenant_id = ?", [tenant.tenant_id])
        only.execute("detach warehouse")
        got = kind.live.metrics(only, tenant, cutoff, None)
        assert len(got) == len(on_warehouse[kind.name]), kind.name
        assert all(g == pytest.approx(w) for g, w in zip(got, on_warehouse[kind.name], strict=True)), kind.name
        only.close()


def test_triggered_conf_open_requests_and_budget(checked, monkeypatch, capsys):
    settings, _, s = checked
    _clear_requests(settings)
    monkeypatch.setenv("TENANTFLOW_MONITOR_COOLDOWN_HOURS", "0")
    settings = Settings()
    conf = decisions.decide(s, "scheduled__2026-11-25", settings)
    drifted = sorted(t for t, v in s.items() if v["drifted"])
    assert sorted(conf["tenants"]) == drifted and conf["reason"] == "drift" and conf["force"] is True
    assert conf["train_run_id"] == "drift__scheduled__2026-11-25"
    # each request carries the reports of its tenant's drifted checks (results.summarise: no undrifted check's)
    assert conf["reports"] == {t: s[t]["reports"] for t in drifted} and any(conf["reports"].values())
    assert "recommender" in conf["kinds"]
    # a second monitor run while the retrain is open asks for nothing
    assert decisions.decide(s, "scheduled__2026-11-26", settings) is None
    # the train run closes its requests; then the tenants may be asked for again
    results = [{"tenant_id": drifted[0], "error": "boom"}] + [{"tenant_id": t, "promoted": True} for t in drifted[1:]]
    assert decisions.close_requests(conf["train_run_id"], results, settings) == len(drifted)
    hist = {r["tenant_id"]: r["status"] for r in decisions.retrain_history(None, settings)}
    assert hist[drifted[0]] == "failed" and all(hist[t] == "done" for t in drifted[1:])
    from ml.ops.cli import main

    capsys.readouterr()
    assert main(["monitor", "requests", "--tenant", drifted[0]]) == 0  # a block per request
    shown = capsys.readouterr().out
    assert shown.count(f"{drifted[0]}: requested ") == 1 and "; failed 20" in shown, shown
    assert f"  train run: {conf['train_run_id']}\n" in shown and "  drift report: " in shown, shown
    assert main(["monitor", "requests", "--json"]) == 0
    assert {r["tenant_id"]: r["status"] for r in json.loads(capsys.readouterr().out)} == hist
    # a train run in which nobody reached training (its plan failed) served no request
    again = decisions.decide(s, "manual__2026-11-26", settings)
    assert decisions.close_requests(again["train_run_id"], [], settings) == len(drifted)
    assert [r["status"] for r in decisions.retrain_history(None, settings)][-len(drifted) :] == ["failed"] * len(
        drifted
    )
    # budget: one tenant a day, the one with most drifted checks first
    _clear_requests(settings)
    monkeypatch.setenv("TENANTFLOW_MONITOR_DAILY_BUDGET", "1")
    settings = Settings()
    conf = decisions.decide(s, "scheduled__2026-11-27", settings)
    most = sorted(drifted, key=lambda t: (-len(s[t]["checks"]), t))[0]
    assert conf["tenants"] == [most] and all("budget" in conf["skipped"][t] for t in drifted if t != most)
    _clear_requests(settings)


def test_cooldown_after_a_retrain(checked):
    settings, _, s = checked
    _clear_requests(settings)
    # every tenant was trained minutes ago; the default cooldown is a day
    assert MonitorPolicy().cooldown_hours == 24
    assert decisions.decide(s, "scheduled__cooldown", settings) is None
    # a tenant's own policy can shorten it
    policies.set_tenant_policy("shorter", {"cooldown_hours": "0"}, settings)
    try:
        conf = decisions.decide(s, "scheduled__cooldown2", settings)
        assert conf["tenants"] == ["shorter"]
    finally:
        policies.set_tenant_policy("shorter", {"cooldown_hours": "24"}, settings)
        _clear_requests(settings)


def test_auto_rollback_when_the_new_champion_does_worse_live(checked):
    settings, _, _ = checked
    tid = "steady02"
    old = str(registry.version_by_alias(f"recommender.{tid}", registry.CHAMPION, settings).version)
    res = train.train_tenant("recommender", tid, "test", settings, force=True)
    assert res["promoted"] is False, res  # the same global model again: the gate keeps the champion
    new = res["version"]
    registry.promote("recommender", tid, new, "test: promoted by hand", settings)

    def live(new_hit: int) -> pd.DataFrame:
        base = {"tenant_id": tid, "kind": "recommender", "horizon_days": 1, "users_active": 100}
        return pd.DataFrame(
            [
                {**base, "model_version": old, "as_of": date(2026, 11, 10), "users_hit": 80},
                {**base, "model_version": new, "as_of": date(2026, 11, 12), "users_hit": new_hit},
            ]
        )

    assert rollback.watch_promotions(live(new_hit=78), settings) == []  # within tolerance: kept
    assert str(registry.version_by_alias(f"recommender.{tid}", registry.CHAMPION, settings).version) == new
    actions = rollback.watch_promotions(live(new_hit=50), settings)
    assert [(a["from_version"], a["to_version"]) for a in actions] == [(new, old)]
    assert str(registry.version_by_alias(f"recommender.{tid}", registry.CHAMPION, settings).version) == old
    last = audit.entries(settings, tid, "recommender")[-1]
    assert last.action == "rollback" and last.actor == "monitor" and "0.500" in last.reason
    assert rollback.watch_promotions(live(new_hit=50), settings) == []  # never twice


# ---------------------------------------------------------------- bad windows


def _windows(ref: pd.DataFrame, cur: pd.DataFrame) -> TenantWindows:
    return TenantWindows("acme", "eu", date(2026, 11, 20), date(2026, 11, 13), ref, cur)


def _events(n: int, seed: int, **over) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "event_date": date(2026, 11, 1),
            "event_type": rng.choice(["view", "click", "complete"], n, p=[0.6, 0.3, 0.1]),
            "dwell_seconds": rng.lognormal(3, 0.5, n),
            "topic": rng.choice(["news", "tech", "food"], n),
            "device": rng.choice(["web", "ios"], n),
        }
    )
    for k, v in over.items():
        df[k] = v
    return df


def _check(ref, cur, tmp_path) -> dict[str, CheckResult]:
    rows = check_tenant(
        _windows(ref, cur), {}, MonitorPolicy(min_rows=300), Settings(home=tmp_path), date(2026, 11, 20)
    )
    return {r.metric: r for r in rows}


def test_stationary_synthetic_events_do_not_drift(tmp_path):
    r = _check(_events(3000, 1), _events(2000, 2), tmp_path)
    assert r["drifted_columns"].drifted is False and r["drifted_columns"].status == "ok"
    assert (tmp_path / "reports").exists()


def test_empty_current_window_is_insufficient_data(tmp_path):
    r = _check(_events(3000, 1), _events(0, 2), tmp_path)
    assert r["rows"].status == "insufficient_data" and r["rows"].drifted is None


def test_a_handful_of_users_is_insufficient_data(tmp_path):
    r = _check(_events(3000, 1), _events(12, 2), tmp_path)
    assert r["rows"].status == "insufficient_data" and "12 current" in r["rows"].detail


def test_all_null_column_is_an_error_not_no_drift(tmp_path):
    r = _check(_events(3000, 1), _events(2000, 2, dwell_seconds=np.nan), tmp_path)
    assert r["column:dwell_seconds"].status == "error" and r["column:dwell_seconds"].drifted is None
    assert "missing in the current window" in r["column:dwell_seconds"].detail
    assert r["column:topic"].status == "ok"  # the other columns are still judged


def test_single_value_column(tmp_path):
    r = _check(_events(3000, 1, device="web"), _events(2000, 2, device="web"), tmp_path)
    assert r["column:device"].status == "skipped" and r["column:device"].drifted is None
    r = _check(_events(3000, 1, dwell_seconds=30.0), _events(2000, 2), tmp_path)
    assert r["column:dwell_seconds"].status == "error" and "spread is zero" in r["column:dwell_seconds"].detail


def test_a_click_only_tenant_is_judged_on_its_clicks(tmp_path):
    """No views, so no dwell time: the topic and device of its clicks are still judged, and a column
    the tenant never sends is skipped, not an error."""
    clicks = {"event_type": "click", "dwell_seconds": np.nan}
    r = _check(_events(3000, 1, **clicks), _events(2000, 2, **clicks), tmp_path)
    assert r["drifted_columns"].status == "ok" and r["drifted_columns"].drifted is False
    assert r["column:topic"].status == "ok" and r["column:device"].status == "ok"
    assert r["column:dwell_seconds"].status == "skipped" and "does not send" in r["column:dwell_seconds"].detail
    assert r["column:event_type"].status == "skipped"
    cur = _events(2000, 2, **clicks)
    cur.loc[:1199, "topic"] = "tech"  # the clicks move to one topic
    assert _check(_events(3000, 1, **clicks), cur, tmp_path)["column:topic"].drifted


def test_unseen_category_is_named(tmp_path):
    cur = _events(2000, 2)
    cur.loc[:999, "topic"] = "ai-shorts"
    r = _check(_events(3000, 1), cur, tmp_path)
    assert r["column:topic"].drifted and "ai-shorts" in r["column:topic"].detail


def test_a_broken_tenant_never_stops_the_others(checked, monkeypatch):
    settings, whs, _ = checked
    from ml.core.warehouse import Warehouse

    wh = whs[0]
    real = run.read_windows

    def broken(con, tenant, *a, **k):
        if tenant.tenant_id == "steady03":
            raise duckdb.IOException("disk on fire")  # a fault we cannot cause for one tenant only
        return real(con, tenant, *a, **k)

    monkeypatch.setattr(run, "read_windows", broken)
    res = run.monitor_warehouse(
        Warehouse(wh.key, ("steady03", "steady04"), wh.sharing_tenants),
        settings,
        today=date.today() + timedelta(days=1),
    )
    assert res["tenants"]["steady03"]["problems"] and "disk on fire" in res["tenants"]["steady03"]["problems"][0]
    assert not res["tenants"]["steady04"]["problems"] and res["tenants"]["steady04"]["drifted"] is False


def test_feature_drift_waits_until_the_reference_covers_the_feature_windows(tmp_path):
    """A champion trained on a young tenant: its 28-day features were still filling, which is growth, not drift."""
    from dataclasses import replace
    from types import SimpleNamespace

    import lightgbm as lgb

    from ml.data.snapshots import Snapshot

    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 5.0, 2000)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 1},
        lgb.Dataset(pd.DataFrame({"x": x}), label=(x > 10).astype(int)),
        num_boost_round=5,
    )
    young = Snapshot("acme", "eu", "s1", tmp_path, "m", "now", {}, {}, {}, history_days=10)
    pd.DataFrame({"x": x[:1000]}).to_parquet(young.reference("user_features"))
    w = _windows(_events(3000, 1), _events(2000, 2))
    w.features_current["user_features"] = pd.DataFrame({"x": x[1000:] * 3})  # counts that tripled as history grew

    def checks(snap):
        champion = Champion("churn", "churn.acme", SimpleNamespace(version="3", tags={}, run_id=None), booster, ["x"])
        champ = MonitoredChampion(champion, snap, {})
        rows = check_tenant(
            w, {"churn": champ}, MonitorPolicy(min_rows=300), Settings(home=tmp_path), date(2026, 11, 20)
        )
        return {(r.check, r.metric): r for r in rows if r.check in ("feature_drift", "prediction_drift")}

    held = checks(young)
    assert set(held) == {("feature_drift", "reference_history_days"), ("prediction_drift", "reference_history_days")}
    assert all(
        r.status == "insufficient_data" and r.drifted is None and (r.value, r.threshold) == (10, 28)
        for r in held.values()
    )
    assert "28-day feature windows" in held["feature_drift", "reference_history_days"].detail
    # once the reference covers the windows, the same change is judged, and drifts
    judged = checks(replace(young, history_days=28))
    assert judged["feature_drift", "column:x"].drifted and judged["feature_drift", "share_drifted_columns"].drifted
    assert judged["prediction_drift", "score"].status == "ok"


def test_recommendations_served_online_are_measured_like_the_batch_ones(checked, tmp_path):
    """The API's prediction log feeds the same live metrics: the batch's top-10, served online, scores the same."""
    import json

    settings, whs, _ = checked
    con = warehouse_connect(whs[0].path(settings), read_only=True)
    try:
        recs = con.execute(
            "select as_of, user_id, list(item_id order by rank) as items, any_value(model_version) as v "
            "from predictions.recommendations where tenant_id = 'steady05' group by all"
        ).fetchall()
        log = tmp_path / "date=x" / "part-1.jsonl"
        log.parent.mkdir()
        with open(log, "w") as f:
            for as_of, user, items, version in recs:
                f.write(
                    json.dumps(
                        {
                            "at": f"{as_of}T12:00:00+00:00",
                            "tenant_id": "steady05",
                            "endpoint": "recommendations",
                            "user_id": user,
                            "items": items,
                            "model_version": version,
                            "arm": "champion",
                        }
                    )
                    + "\n"
                )
            f.write(
                json.dumps(
                    {
                        "at": f"{recs[0][0]}T12:00:00+00:00",
                        "tenant_id": "steady05",
                        "endpoint": "recommendations",
                        "user_id": "new-user",
                        "items": ["i000001"],
                        "model_version": None,
                        "arm": "cold_start",
                    }
                )
                + "\n"
            )
            f.write(
                json.dumps(
                    {
                        "at": f"{recs[0][0]}T12:00:00+00:00",
                        "tenant_id": "steady06",
                        "endpoint": "recommendations",
                        "user_id": recs[0][1],
                        "items": recs[0][2],
                        "model_version": "9",
                        "arm": "champion",
                    }
                )
                + "\n"
            )
        cutoff = windows._serving_cutoff(con, "steady05")
        (window,) = con.execute(
            "select label_window_days from int_tenant_windows where tenant_id = 'steady05'"
        ).fetchone()
        horizons = {1, window}  # the next day's clicks and the tenant's label window's
        rows = live_recommendation_metrics(
            con, Tenant("steady05", "eu"), cutoff, ServedLog((str(tmp_path / "date=*" / "*.jsonl"),))
        )
    finally:
        con.close()
    by = {(r["source"], r["horizon_days"]): r for r in rows}
    assert set(by) == {(s, h) for s in ("batch", "online") for h in horizons}
    for h in horizons:
        batch, online = by["batch", h], by["online", h]
        same = (
            "as_of",
            "model_version",
            "users_scored",
            "users_active",
            "users_hit",
            "impressions",
            "recommended_clicked",
        )
        assert {k: online[k] for k in same} == {k: batch[k] for k in same}
        assert batch["users_active"] > 0 and 0 < batch["hit_rate_at_10"] < 1


def _churn_world(con, churned_top: bool, definition: str = "cancellation") -> None:
    """Scores for 200 users on Nov 1; the 30 highest-scored (or 30 random ones) churn within two
    weeks: cancel, or (``definition`` inactivity) are the ones who do not come back."""
    rng = np.random.default_rng(4)
    p = rng.random(200)
    order = np.argsort(-p)
    churners = order[:30] if churned_top else rng.choice(200, 30, replace=False)
    con.execute("create schema predictions")
    con.execute(
        "create table predictions.churn_scores (tenant_id varchar, as_of date, user_id varchar, "
        "churn_probability double, model_version varchar)"
    )
    con.executemany(
        "insert into predictions.churn_scores values ('acme', date '2026-11-01', ?, ?, '3')",
        [[f"u{i}", float(p[i])] for i in range(200)],
    )
    con.execute(
        "create table stg_lake__events (tenant_id varchar, user_id varchar, event_type varchar, event_date date)"
    )
    con.executemany(
        "insert into stg_lake__events values ('acme', ?, 'cancel_subscription', date '2026-11-05')",
        [[f"u{i}"] for i in churners],
    )
    # a cancellation after the window and another tenant's do not count
    con.execute(
        "insert into stg_lake__events values ('acme', 'u199', 'cancel_subscription', date '2026-11-20'), "
        "('globex', 'u0', 'cancel_subscription', date '2026-11-02')"
    )
    con.execute(
        f"create table int_tenant_churn_definitions as select 'acme' as tenant_id, '{definition}' as churn_definition"
    )
    con.execute("create table int_user_activity__daily (tenant_id varchar, user_id varchar, activity_date date)")
    back = [f"u{i}" for i in range(200) if i not in set(churners)]
    con.executemany("insert into int_user_activity__daily values ('acme', ?, date '2026-11-08')", [[u] for u in back])
    # activity after the window, or another tenant's, is no return
    con.execute("insert into int_user_activity__daily values ('acme', ?, date '2026-11-20'), ('globex', ?, date '2026-11-03')",
                [f"u{churners[0]}", f"u{churners[1]}"])  # fmt: skip


@pytest.mark.parametrize("definition", ["cancellation", "inactivity"])
def test_live_churn_metrics_and_decay(definition):
    good, bad = duckdb.connect(), duckdb.connect()
    _churn_world(good, churned_top=True, definition=definition)
    _churn_world(bad, churned_top=False, definition=definition)
    assert live_churn_metrics(good, ACME, date(2026, 11, 14)) == [], "the window has not passed yet"
    (g,) = live_churn_metrics(good, ACME, date(2026, 11, 15))
    (b,) = live_churn_metrics(bad, ACME, date(2026, 11, 15))
    assert (g["users_scored"], g["users_hit"], g["horizon_days"]) == (200, 30, 14)
    assert g["roc_auc"] == pytest.approx(1.0) and g["pr_auc"] == pytest.approx(1.0) and 0.3 < b["roc_auc"] < 0.7
    # a tenant whose churn window is three weeks (int_tenant_windows): its batch is judged a week
    # later, and u199's cancellation (or the first churner's return) on Nov 20 falls inside it
    good.execute("create table int_tenant_windows as select 'acme' as tenant_id, 21 as churn_window_days")
    assert live_churn_metrics(good, ACME, date(2026, 11, 21)) == []
    (w,) = live_churn_metrics(good, ACME, date(2026, 11, 22))
    assert (w["horizon_days"], w["users_hit"]) == (21, 31 if definition == "cancellation" else 29)
    from types import SimpleNamespace

    churn = get_kind("churn")
    champion = Champion("churn", "churn.acme", SimpleNamespace(version="3", tags={}, run_id=None), None, [])
    champ = MonitoredChampion(champion, None, {"roc_auc": 0.74})
    base = {"tenant_id": "acme", "kind": "churn", "model_version": "3"}
    w = _windows(_events(10, 1), _events(10, 2))
    policy = MonitorPolicy()
    w.live = [g]
    ok = _performance(churn, champ, w, policy, base)
    assert ok.check == "performance" and ok.metric == "live_roc_auc"
    assert ok.status == "ok" and ok.drifted is False and ok.value == pytest.approx(1.0)
    w.live = [b]
    decayed = _performance(churn, champ, w, policy, base)
    assert decayed.drifted is True and decayed.threshold == pytest.approx(0.74 * 0.85)
    w.live = [{**b, "users_hit": 4}]
    assert _performance(churn, champ, w, policy, base).status == "insufficient_data"
    w.live = [{**g, "model_version": "2"}]  # another version's batch says nothing about this champion
    assert _performance(churn, champ, w, policy, base).status == "insufficient_data"
    # a batch judged over 21 days says nothing of a holdout judged over 14 (the default churn
    # window of a champion without a snapshot), but of one judged over 21 it does
    w.live = [{**b, "horizon_days": 21}]
    assert _performance(churn, champ, w, policy, base).status == "insufficient_data"
    three_weeks = MonitoredChampion(champion, SimpleNamespace(windows={"churn_window_days": 21}), {"roc_auc": 0.74})
    assert _performance(churn, three_weeks, w, policy, base).drifted is True
