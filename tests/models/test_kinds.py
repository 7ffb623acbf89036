"""Model kinds plug in: discovered from their modules, each complete, and engagement's live check holds values."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pytest

from ml.core.errors import TenantError
from ml.core.prediction_log import ServedLog
from ml.core.settings import MonitorSettings
from ml.core.tenants import Tenant
from ml.models import evaluate
from ml.models.kinds import all_kinds, get_kind, kind_names, kinds_of, online_marts, serving_marts, training_marts

ACME = Tenant("acme", "eu")


def test_the_registered_kinds_are_discovered_and_complete():
    assert kind_names() == ["churn", "engagement", "recommender"]
    paths = [k.endpoint.path for k in all_kinds()]
    assert sorted(paths) == ["/v1/churn-scores", "/v1/engagement-scores", "/v1/recommendations"]
    assert training_marts() == {
        "churn_examples": "cutoff_date, user_id",
        "engagement_examples": "cutoff_date, user_id",
        "ranking_examples": "cutoff_date, user_id, item_id",
        "interaction_history": "user_id, item_id, event_date",
    }
    assert serving_marts() == ["ranking_candidates", "user_features"]
    assert set(online_marts()) == {"ranking_candidates", "cold_start_items", "interaction_history", "user_features"}
    for k in all_kinds():
        assert k.headline in k.reported_metrics and k.headline in k.lift_metrics
        assert k.predictions_table.startswith("predictions.") and k.predictions_table in k.predictions_ddl
    with pytest.raises(TenantError, match="known kinds: churn, engagement, recommender"):
        get_kind("nope")


def test_every_kinds_predictions_table_is_a_dbt_source_with_its_columns():
    import yaml

    from ml.core.settings import Settings

    path = Settings().dbt_project_dir / "models/staging/_predictions__sources.yml"
    (source,) = yaml.safe_load(path.read_text())["sources"]
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in source["tables"]}
    con = duckdb.connect()
    con.execute("create schema predictions")
    for k in all_kinds():
        con.execute(k.predictions_ddl)
        table = k.predictions_table.split(".")[1]
        columns = [r[0] for r in con.execute(f"describe {k.predictions_table}").fetchall()]
        assert declared.get(table) == columns, f"{path.name}: declare {table} with the columns {k.name} writes"
    assert set(declared) == {k.predictions_table.split(".")[1] for k in all_kinds()}


def test_a_tenant_uses_every_kind_unless_it_lists_some():
    assert [k.name for k in kinds_of(Tenant("acme", "eu"))] == ["churn", "engagement", "recommender"]
    assert [k.name for k in kinds_of(Tenant("acme", "eu", model_kinds=("recommender",)))] == ["recommender"]


def test_regression_metrics_by_hand():
    m = evaluate.regression_metrics(np.array([0, 2, 4]), np.array([1, 2, 2]))
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    # mean Poisson deviance: 2 * mean(y log(y/p) - (y - p)), y log y = 0 at y = 0
    expected = 2 * np.mean([0 - (0 - 1), 0, 4 * np.log(4 / 2) - (4 - 2)])
    assert m["poisson_deviance"] == pytest.approx(expected) and m["spearman"] == pytest.approx(0.866025, abs=1e-6)
    assert evaluate.lift({"rmse": 2.0}, {"rmse": 2.5}, ("rmse",), ("rmse",)) == {"rmse_lift": pytest.approx(0.2)}


def _engagement_world(con: duckdb.DuckDBPyConnection, ranks_right: bool) -> None:
    """200 users scored on Nov 1; their sessions in the next 7 days follow the scores, or not."""
    rng = np.random.default_rng(5)
    p = rng.gamma(2.0, 2.0, 200)
    actual = np.round(p) if ranks_right else rng.permutation(np.round(p))
    con.execute("create schema predictions")
    con.execute(
        "create table predictions.engagement_scores (tenant_id varchar, as_of date, user_id varchar, "
        "expected_sessions double, model_version varchar)"
    )
    con.executemany(
        "insert into predictions.engagement_scores values ('acme', date '2026-11-01', ?, ?, '2')",
        [[f"u{i}", float(p[i])] for i in range(200)],
    )
    con.execute(
        "create table int_user_activity__daily (tenant_id varchar, user_id varchar, activity_date date, sessions bigint)"
    )
    # the sessions of one day inside the window; a day after it and another tenant's do not count
    con.executemany(
        "insert into int_user_activity__daily values ('acme', ?, date '2026-11-03', ?)",
        [[f"u{i}", int(actual[i])] for i in range(200) if actual[i] > 0],
    )
    con.execute(
        "insert into int_user_activity__daily values ('acme', 'u0', date '2026-11-08', 50), "
        "('globex', 'u1', date '2026-11-03', 50)"
    )


def test_engagement_live_metrics_and_decay():
    engagement = get_kind("engagement")
    good, bad = duckdb.connect(), duckdb.connect()
    _engagement_world(good, ranks_right=True)
    _engagement_world(bad, ranks_right=False)
    assert engagement.live.metrics(good, ACME, date(2026, 11, 7), None) == [], "the 7 days have not passed"
    (g,) = engagement.live.metrics(good, ACME, date(2026, 11, 8), None)
    (b,) = engagement.live.metrics(bad, ACME, date(2026, 11, 8), None)
    assert (g["users_scored"], g["horizon_days"], g["kind"]) == (200, 7, "engagement")
    assert g["spearman"] > 0.95 and abs(b["spearman"]) < 0.3 and g["rmse"] < b["rmse"]
    policy = MonitorSettings()
    holdout = {"spearman": 0.7, "rmse": 2.0}
    ok = engagement.live.decay([g], holdout, policy, "2")
    assert (ok.metric, ok.status, ok.drifted) == ("live_spearman", "ok", False)
    decayed = engagement.live.decay([b], holdout, policy, "2")
    assert decayed.drifted is True and decayed.threshold == pytest.approx(0.7 * 0.85)
    assert engagement.live.decay([], holdout, policy, "2").status == "insufficient_data"
    assert engagement.live.decay([g], {}, policy, "2").status == "no_reference"
    # a tenant whose short window is 14 days: its batch is judged after 14 days, on all 14 (u0's
    # 50 sessions on Nov 8, outside the week, now count: the same predictions miss by more)
    good.execute("create table int_tenant_windows as select 'acme' as tenant_id, 14 as short_window_days")
    assert engagement.live.metrics(good, ACME, date(2026, 11, 14), None) == [], "the 14 days have not passed"
    (fortnight,) = engagement.live.metrics(good, ACME, date(2026, 11, 15), None)
    assert fortnight["horizon_days"] == 14 and fortnight["mae"] == pytest.approx(g["mae"] + 50 / 200, abs=0.01)
    # a batch the score DAG recorded as scored for 7 days is judged over those 7, whatever the window is now
    good.execute("alter table predictions.engagement_scores add column horizon_days integer")
    good.execute("update predictions.engagement_scores set horizon_days = 7")
    (scored_for,) = engagement.live.metrics(good, ACME, date(2026, 11, 15), None)
    assert scored_for["horizon_days"] == 7 and scored_for["mae"] == pytest.approx(g["mae"])


def _recommendation_world(con: duckdb.DuckDBPyConnection, log: str, low_rated: tuple = ()) -> None:
    """Top lists served on Nov 1 (batch: a [x, y, z], b [x, y], c [z]; online: a twice) and the clicks after;
    ``low_rated``: (user, item, day) consumptions that are no positive interaction (a rating below the threshold)."""
    import json

    con.execute("create schema predictions")
    con.execute(
        "create table predictions.recommendations (tenant_id varchar, as_of date, user_id varchar, rank integer, "
        "item_id varchar, model_version varchar)"
    )
    lists = {"a": "xyz", "b": "xy", "c": "z"}
    con.executemany(
        "insert into predictions.recommendations values ('acme', date '2026-11-01', ?, ?, ?, '3')",
        [[u, r + 1, i] for u, items in lists.items() for r, i in enumerate(items)],
    )
    con.execute(
        "create table stg_lake__events (tenant_id varchar, user_id varchar, item_id varchar, event_date date, "
        "is_interaction boolean, is_consumed boolean)"
    )
    clicks = [
        ("a", "x", "2026-10-20"),
        ("a", "x", "2026-11-02"),
        ("a", "y", "2026-11-02"),
        ("a", "w", "2026-11-02"),
        ("b", "y", "2026-11-01"),
        ("c", "q", "2026-11-09"),
    ]  # fmt: skip  (c's click comes after the week)
    con.executemany("insert into stg_lake__events values ('acme', ?, ?, cast(? as date), true, true)", clicks)
    for row in low_rated:
        con.execute("insert into stg_lake__events values ('acme', ?, ?, cast(? as date), false, true)", row)
    with open(log, "w") as f:  # the API answered a twice that day: [w, x] and [x, y, z]
        for items in (["w", "x"], ["x", "y", "z"]):
            answer = {"at": "2026-11-01T09:00:00+00:00", "tenant_id": "acme", "endpoint": "recommendations",
                      "user_id": "a", "items": items, "model_version": "3", "arm": "champion"}  # fmt: skip
            f.write(json.dumps(answer) + "\n")


def test_recommendation_live_metrics_are_the_holdouts_definitions(tmp_path):
    """Live HitRate@10 and nDCG@10 are ml.models.evaluate's, relevant items as the holdout's: the
    clicks after the batch, without what the user had clicked before it under the exclude policy."""
    from dataclasses import replace

    recommender = get_kind("recommender")
    con = duckdb.connect()
    _recommendation_world(con, str(tmp_path / "answers.jsonl"))
    log = ServedLog((str(tmp_path / "*.jsonl"),))
    rows = {(r["source"], r["horizon_days"]): r for r in recommender.live.metrics(con, ACME, date(2026, 11, 10), log)}
    week = rows["batch", 7]
    # a: relevant {y, w} (x was clicked before), y at rank 2; b: relevant {y} at rank 2; c: no click in the week
    ndcg_a, ndcg_b = (1 / np.log2(3)) / (1 + 1 / np.log2(3)), 1 / np.log2(3)
    assert (week["users_scored"], week["users_active"], week["users_hit"]) == (3, 2, 2)
    assert week["ndcg_at_10"] == pytest.approx((ndcg_a + ndcg_b) / 2) and week["hit_rate_at_10"] == 1.0
    assert (week["impressions"], week["recommended_clicked"]) == (6, 2) and week["ctr"] == pytest.approx(2 / 6)
    day = rows["batch", 1]  # only b clicked on Nov 1
    assert (day["users_active"], day["ndcg_at_10"]) == (1, pytest.approx(ndcg_b))
    # online: a's two answers form one list, each item at its best rank: w, x, y, z; relevant w (1), y (3)
    online = rows["online", 7]
    assert online["users_scored"] == 1 and online["ndcg_at_10"] == pytest.approx(1.5 / (1 + 1 / np.log2(3)))
    # under the allow policy the re-clicked x is relevant too: a's x (1) and y (2) of {x, y, w}
    allow = recommender.live.metrics(con, replace(ACME, seen_items="allow"), date(2026, 11, 10), log)
    week = next(r for r in allow if (r["source"], r["horizon_days"]) == ("batch", 7))
    ndcg_a = (1 + 1 / np.log2(3)) / (1 + 1 / np.log2(3) + 0.5)
    assert week["ndcg_at_10"] == pytest.approx((ndcg_a + ndcg_b) / 2) and week["recommended_clicked"] == 3
    assert recommender.live.metrics(con, ACME, date(2026, 11, 1), log) == [], "no horizon has passed"


def test_live_metrics_never_count_an_item_the_user_consumed_before_the_batch_even_without_liking_it(tmp_path):
    """Under the exclude policy an item the user rated below the tenant's threshold before the batch is consumed:
    a later click on it is not relevant (no list could hold it), as the holdout's rule; under allow it is."""
    from dataclasses import replace

    recommender = get_kind("recommender")
    con = duckdb.connect()
    _recommendation_world(con, str(tmp_path / "answers.jsonl"), low_rated=[("a", "w", "2026-10-21")])
    log = ServedLog((str(tmp_path / "*.jsonl"),))
    rows = {(r["source"], r["horizon_days"]): r for r in recommender.live.metrics(con, ACME, date(2026, 11, 10), log)}
    # a: relevant {y} now (x clicked before, w rated low before), y at rank 2; b as before
    ndcg_b = 1 / np.log2(3)
    assert rows["batch", 7]["ndcg_at_10"] == pytest.approx(ndcg_b)
    assert rows["online", 7]["ndcg_at_10"] == pytest.approx(0.5), "a's online list [w, x, y, z]: y at 3 of {y}"
    allow = recommender.live.metrics(con, replace(ACME, seen_items="allow"), date(2026, 11, 10), log)
    week = next(r for r in allow if (r["source"], r["horizon_days"]) == ("batch", 7))
    ndcg_a = (1 + 1 / np.log2(3)) / (1 + 1 / np.log2(3) + 0.5)  # x, y and w relevant: the low rating is no click
    assert week["ndcg_at_10"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    # a warehouse whose events view was built before is_consumed: every consumption was a click
    old = duckdb.connect()
    _recommendation_world(old, str(tmp_path / "answers.jsonl"))
    expected = recommender.live.metrics(old, ACME, date(2026, 11, 10), log)
    old.execute("alter table stg_lake__events drop column is_consumed")
    assert recommender.live.metrics(old, ACME, date(2026, 11, 10), log) == expected


def test_live_metrics_read_a_silo_tenants_sealed_prediction_log_as_its_json_lines(tmp_path, settings):
    """A silo tenant's prediction log is sealed JSON lines (ml.core.prediction_log): the same records
    give the same live metrics as plain ones, and the file holds none of them in its bytes."""
    import json

    from ml.core import prediction_log, sealed_files
    from ml.core.tenant_keys import silo_key

    recommender = get_kind("recommender")
    con = duckdb.connect()
    _recommendation_world(con, str(tmp_path / "answers.jsonl"))
    expected = recommender.live.metrics(con, ACME, date(2026, 11, 10), ServedLog((str(tmp_path / "*.jsonl"),)))
    records = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    sealed = tmp_path / "log" / "part-1.jsonl"
    sealed.parent.mkdir()
    sealed.write_bytes(
        prediction_log.encode(records, sealed_files.sealing_key(silo_key(settings, "acme", create=True)))
    )
    assert sealed_files.is_sealed(sealed) and b"recommendations" not in sealed.read_bytes()
    assert prediction_log.read_records(sealed, settings, "acme") == records
    log = ServedLog((), (sealed,), "acme", settings)
    assert recommender.live.metrics(con, ACME, date(2026, 11, 10), log) == expected


def test_each_kind_lives_in_a_module_named_after_it():
    """The train DAG's form offers the kinds by their modules' names (dags/common/forms.py, which may
    not import ml while Airflow parses it): they must be the registered kinds' names."""
    from dags.common.forms import kind_choices
    from ml.models.kinds import kind_names

    assert kind_choices() == kind_names()


def test_engagement_scores_written_before_the_per_tenant_windows_keep_their_predictions():
    """``expected_sessions_7d`` (an earlier release's column) is renamed in place, values kept,
    ``horizon_days`` is added (null for the old rows), and the next batch is written beside them."""
    from ml.models import score

    engagement = get_kind("engagement")
    con = duckdb.connect()
    con.execute("create schema predictions")
    old_ddl = engagement.predictions_ddl.replace("expected_sessions double", "expected_sessions_7d double")
    con.execute(old_ddl.replace("    horizon_days integer,\n", ""))
    con.execute(
        "insert into predictions.engagement_scores values ('acme', '2026-11-01', 'u1', 2.5, 'e', '1', 't', now())"
    )
    for _ in range(2):  # idempotent
        score.upgrade_table(con, engagement)
    con.execute(
        "insert into predictions.engagement_scores by name select 'acme' as tenant_id, date '2026-11-08' as as_of, "
        "'u1' as user_id, 3.0 as expected_sessions, 7 as horizon_days, 'e' as model_name, '2' as model_version, "
        "'t' as trained_on, now() as scored_at"
    )
    rows = con.execute(
        "select as_of, expected_sessions, horizon_days from predictions.engagement_scores order by as_of"
    ).fetchall()
    assert [r[1:] for r in rows] == [(2.5, None), (3.0, 7)]


def test_recommender_decay_judges_the_newest_batch_the_score_dags_before_the_apis():
    """Rows come sorted by source (batch, then online): the newest day decides, not the last row."""
    recommender = get_kind("recommender")
    row = {"users_active": 200, "impressions": 2000, "recommended_clicked": 100, "horizon_days": 7}
    old_online = {**row, "source": "online", "as_of": date(2026, 11, 1), "users_hit": 40, "hit_rate_at_10": 0.2}
    new_batch = {**row, "source": "batch", "as_of": date(2026, 11, 5), "users_hit": 120, "hit_rate_at_10": 0.6}
    same_day = {**row, "source": "online", "as_of": date(2026, 11, 5), "users_hit": 40, "hit_rate_at_10": 0.2}
    v = recommender.live.decay([new_batch, old_online], {"hit_rate_at_10": 0.6}, MonitorSettings(), "3")
    assert (v.status, v.drifted, v.value) == ("ok", False, 0.6) and "2026-11-05" in v.detail
    v = recommender.live.decay([new_batch, same_day], {"hit_rate_at_10": 0.6}, MonitorSettings(), "3")
    assert v.value == 0.6
