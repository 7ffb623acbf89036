"""The dbt feature store on generated data: isolation, point-in-time correctness, checks."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ml.core.contract import INTERACTION_EVENT_TYPES
from ml.core.settings import REPO_ROOT, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect as warehouse_connect
from ml.core.warehouse import warehouse_lock, warehouses
from ml.data import dbt, features
from ml.data.feature_checks import check_features
from ml.data.generate import generate
from ml.data.generate.config import GenerationConfig, TenantSpec
from ml.data.ingest.run import ingest_tenants
from ml.models import recsys
from ml.models.kinds import online_marts
from ml.models.recsys import candidates
from tests.world import END, register, world_env

SPECS = [
    TenantSpec("acme", "eu", users=250, items=70, fmt="csv"),
    TenantSpec("globex", "eu", users=200, items=60, fmt="jsonl"),
    TenantSpec("umbra", "eu", users=150, items=50, fmt="parquet"),  # pool, does not share data
    TenantSpec("initech", "us", users=150, items=40, fmt="parquet"),  # silo
    TenantSpec("clicky", "eu", users=150, items=50, fmt="parquet"),  # sends clicks only (see world)
    TenantSpec("viewy", "eu", users=100, items=40, fmt="parquet"),  # sends page views only, its interactions
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    settings = world_env(mp, tmp_path_factory.mktemp("features") / "home")
    config = GenerationConfig(tenants=SPECS, days=26, end_date=END, seed=3)  # one churn window
    # umbra sets its recommender, churn and feature windows (14 days, a short one of 7), globex its
    # feature window (42 days, a short one of 14); the others follow their activity cadence
    register(
        settings,
        config,
        silo=("initech",),
        not_sharing=("umbra", "clicky", "viewy"),
        fields={
            "umbra": {"label_window_days": 14, "churn_window_days": 7, "feature_window_days": 14},
            "globex": {"feature_window_days": 42},
            "viewy": {"interaction_types": ("view",)},
        },
    )
    generate(config, settings.stores.landing.root, workers=1)
    for tenant, kept in (("clicky", "click"), ("viewy", "view")):  # a click-only product, a news site's views
        for path in settings.stores.landing.tenant_dir("eu", tenant).rglob("*.parquet"):
            table = pq.read_table(path)  # ... without cancellations or session ids
            table = table.filter(pc.equal(table.column("event_type"), kept))
            session = table.schema.get_field_index("session_id")
            pq.write_table(table.set_column(session, "session_id", pa.nulls(table.num_rows, pa.string())), path)
    ingest_tenants(
        [s.tenant_id for s in SPECS], config.start_date, config.start_date + timedelta(days=config.days), settings
    )
    whs = warehouses(TenantStore(settings).list())
    results = {w.key: features.build_and_check_warehouse(w, online_marts(), settings) for w in whs}
    yield settings, config, results
    mp.undo()


def _con(settings, key):
    return warehouse_connect(settings.stores.warehouse_file(key), read_only=True)


def test_every_dbt_node_passes_and_every_tenant_is_healthy(world):
    settings, _, results = world
    assert set(results) == {"eu/pool", "us/silo_initech"}
    for key, res in results.items():
        assert res["failed_nodes"] == [], key
        assert len([n for n in res["nodes"] if n["node"].startswith("test.")]) >= 40
        for tid, h in res["health"].items():
            assert h["healthy"], (tid, h["health_problems"])
    # a tenant that sends clicks only (no views, completions, published items) is healthy too, and
    # one that sends views only and declared them its interactions
    assert {"clicky", "viewy"} <= set(results["eu/pool"]["health"])
    con = _con(settings, "eu/pool")
    for tenant in ("clicky", "viewy"):
        labelled = f"select count(*) from ranking_examples where tenant_id = '{tenant}' and is_clicked"
        assert con.execute(labelled).fetchone()[0], tenant
    con.close()


def test_silo_and_pool_files_hold_only_their_tenants(world):
    settings, _, _ = world
    for key, allowed in (("eu/pool", {"acme", "globex", "umbra", "clicky", "viewy"}), ("us/silo_initech", {"initech"})):
        con = _con(settings, key)
        tables = [
            r[0]
            for r in con.execute(
                "select distinct table_name from information_schema.columns where column_name = 'tenant_id'"
            ).fetchall()
        ]
        assert "ranking_examples" in tables and "user_features" in tables
        for t in tables:
            seen = {r[0] for r in con.execute(f'select distinct tenant_id from "{t}"').fetchall()}
            assert seen <= allowed, (key, t, seen)
        con.close()


def _lake(settings, tenant_id, region="eu"):
    return pd.read_parquet(settings.stores.lake.tenant_dir(region, tenant_id))


@pytest.mark.parametrize("tenant_id, short, long", [("acme", 7, 28), ("globex", 14, 42), ("umbra", 7, 14)])
def test_ranking_examples_are_point_in_time_correct_over_the_tenants_windows(world, tenant_id, short, long):
    """Features count the tenant's short and long windows before the cutoff (acme's follow its
    cadence, a daily one: 7 and 28 days; globex sets 42, so 14 and 42; umbra 14, so 7 and 14: in
    26 days of history only its long window leaves events out), labels its label window after."""
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    ex = con.execute("select * from ranking_examples where tenant_id = ?", [tenant_id]).df()
    (label,) = con.execute(
        "select label_window_days from int_tenant_windows where tenant_id = ?", [tenant_id]
    ).fetchone()
    con.close()
    assert len(ex) > 300 and 0.02 < ex.is_clicked.mean() < 0.6
    lake = _lake(settings, tenant_id)
    lake["d"] = lake.event_at.dt.tz_convert("UTC").dt.date
    beyond_a_week = 0  # events 8..14 days before the cutoff: in globex's short window, not in acme's
    for _, row in ex.sample(40, random_state=0).iterrows():
        c = row.cutoff_date.date() if hasattr(row.cutoff_date, "date") else row.cutoff_date
        mine = lake[(lake.user_id == row.user_id) & (lake.event_type != "item_published")]
        assert row.user_events_short == ((mine.d >= c - timedelta(days=short)) & (mine.d < c)).sum()
        assert row.user_events_long == ((mine.d >= c - timedelta(days=long)) & (mine.d < c)).sum()
        beyond_a_week += ((mine.d >= c - timedelta(days=short)) & (mine.d < c - timedelta(days=7))).sum()
        clicked = mine[(mine.event_type == "click") & (mine.item_id == row.item_id)]
        assert bool(row.is_clicked) == bool(((clicked.d >= c) & (clicked.d < c + timedelta(days=label))).any())
        item = lake[(lake.item_id == row.item_id) & (lake.event_type == "click")]
        assert row.item_clicks_short == ((item.d >= c - timedelta(days=short)) & (item.d < c)).sum()
    assert (beyond_a_week > 0) == (short > 7)
    # at the serving cutoff (26 days in), a long window of 14 days leaves events out, 28 or 42 do not
    con = _con(settings, "eu/pool")
    served = con.execute("select * from user_features where tenant_id = ?", [tenant_id]).df()
    (serving,) = con.execute(
        "select cutoff_date from int_feature_cutoffs where tenant_id = ? and is_serving", [tenant_id]
    ).fetchone()
    con.close()
    events = lake[lake.user_id.notna() & (lake.event_type != "item_published")]
    in_long = events[(events.d >= serving - timedelta(days=long)) & (events.d < serving)].groupby("user_id").size()
    served = served.set_index("user_id").events_long  # (users who cancelled before the cutoff are not served)
    assert len(served) > 50 and served.equals(in_long.reindex(served.index).rename("events_long"))
    assert (len(events[events.d < serving - timedelta(days=long)]) > 0) == (long < 28)


def test_a_tenants_windows_are_its_settings_or_follow_its_users_typical_gaps(world):
    """int_tenant_windows: umbra's registry sets a 14-day recommender window and a 7-day churn
    window; acme's follow its cadence (the rule recomputed with pandas from its lake). umbra's
    candidates are labelled by the clicks of the 14 days after a cutoff, only at the newest cutoff
    whose 14 days are complete (the holdout) and at those whose 14 days end by it; its users churn by not coming back within 7 days; its snapshot records the
    windows that training's holdout then uses."""
    from ml.models.runs import snapshot_warehouse

    settings, _, _ = world
    con = _con(settings, "eu/pool")
    windows = con.execute("select * from int_tenant_windows").df().set_index("tenant_id")
    cutoffs = con.execute("select * from int_feature_cutoffs where tenant_id = 'umbra'").df()
    ex = con.execute("select * from ranking_examples where tenant_id = 'umbra'").df()
    con.close()
    assert (windows.loc["umbra", "label_window_days"], windows.loc["umbra", "label_window_source"]) == (14, "setting")
    lake = _lake(settings, "acme")
    lake = lake[lake.event_type.isin(INTERACTION_EVENT_TYPES) & lake.user_id.notna()]
    days = pd.DataFrame({"user_id": lake.user_id, "d": pd.to_datetime(lake.event_at.dt.tz_convert("UTC").dt.date)})
    days = days.drop_duplicates().sort_values(["user_id", "d"]).reset_index(drop=True)
    gaps = days.groupby("user_id").d.diff().dt.days.dropna()
    cadence = gaps.groupby(days.loc[gaps.index, "user_id"]).median().median()
    assert windows.loc["acme", "cadence_days"] == pytest.approx(cadence)
    assert windows.loc["acme", "label_window_days"] == min(28, max(7, 7 * math.ceil(2 * cadence / 7)))
    assert windows.loc["acme", "churn_window_days"] == min(91, max(14, 7 * math.ceil(3 * cadence / 7)))
    assert windows.loc["acme", "label_window_source"] == windows.loc["acme", "churn_window_source"] == "cadence"
    feature_window = min(182, max(28, 7 * math.ceil(4 * cadence / 7)))
    assert (windows.loc["acme", "feature_window_days"], windows.loc["acme", "feature_window_source"]) == (
        feature_window,
        "cadence",
    )
    assert windows.loc["acme", "short_window_days"] == max(7, 7 * math.floor(feature_window / 28 + 0.5))
    # `tenants show` says what the cadence made of the windows a tenant left unset (and nothing for umbra, which set all)
    from ml.core.tenants import TenantStore
    from ml.models.kinds._windows import unset_windows_note

    made = ", ".join(f"{w} {windows.loc['acme', w]}" for w in ("label_window_days", "churn_window_days"))
    assert unset_windows_note(settings, TenantStore(settings).get("acme")) == (
        "label_window_days, churn_window_days, feature_window_days null: from its activity cadence at each features "
        f"build; the last: {made}, feature_window_days {feature_window} (cadence {cadence:.1f} days)"
    )
    assert unset_windows_note(settings, TenantStore(settings).get("umbra")) is None
    assert tuple(windows.loc["globex", ["feature_window_days", "feature_window_source", "short_window_days"]]) == (
        42,
        "setting",
        14,
    )
    assert (windows.loc["umbra", "churn_window_days"], windows.loc["umbra", "churn_window_source"]) == (7, "setting")
    # the rule each tenant's interactions were counted by: viewy's own, the platform's for the others
    assert windows.loc["viewy", "interaction_types"] == "view"
    assert windows.loc["acme", "interaction_types"] == ",".join(INTERACTION_EVENT_TYPES)

    labelled = cutoffs[cutoffs.has_ranking_label & ~cutoffs.is_serving]
    serving = cutoffs.cutoff_date.max()
    assert len(labelled) and (labelled.cutoff_date + pd.Timedelta(days=14) <= serving).all()
    holdout = labelled.cutoff_date.max()  # the newest cutoff whose 14 days are complete (a cutoff a week)
    assert holdout + pd.Timedelta(days=14) <= serving < holdout + pd.Timedelta(days=21)
    # and nothing else in 26 days: a training cutoff's 14 days would have to end by the holdout's
    # cutoff (purged), and the refit cutoff after the holdout's is three weeks back: both would fall
    # in the first week (int_feature_cutoffs' unit test has some)
    assert list(labelled.cutoff_date) == [holdout]
    assert set(ex.cutoff_date) == set(labelled.cutoff_date)
    umbra = _lake(settings, "umbra")
    umbra = umbra[umbra.event_type.isin(INTERACTION_EVENT_TYPES)]
    umbra = umbra.assign(d=pd.to_datetime(umbra.event_at.dt.tz_convert("UTC").dt.date))
    clicked_on = umbra.groupby(["user_id", "item_id"]).d.apply(list).to_dict()
    late = 0  # clicked only in the second week: a positive that a 7-day window would not see
    for _, row in ex.sample(300, random_state=2).iterrows():
        c = pd.Timestamp(row.cutoff_date)
        when = [d for d in clicked_on.get((row.user_id, row.item_id), []) if c <= d]
        assert bool(row.is_clicked) == any(d < c + pd.Timedelta(days=14) for d in when), (row.user_id, c)
        late += bool(row.is_clicked) and not any(d < c + pd.Timedelta(days=7) for d in when)
    assert late > 0
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "eu/pool")
    snap = snapshot_warehouse(wh, ["umbra"], settings)["umbra"]
    assert (snap.windows["label_window_days"], snap.windows["churn_window_days"]) == (14, 7)

    con = _con(settings, "eu/pool")
    churn = con.execute("select cutoff_date, user_id, is_churned from churn_examples where tenant_id = 'umbra'").df()
    con.close()
    assert set(churn.cutoff_date) == set(cutoffs[cutoffs.has_churn_label & ~cutoffs.is_serving].cutoff_date)
    lake = _lake(settings, "umbra")
    cancels = lake[lake.event_type == "cancel_subscription"]
    cancelled_on = cancels.groupby("user_id").event_at.min().dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None)
    assert len(churn) > 50 and churn.is_churned.any()
    second_week = 0  # cancelled 7..13 days after the cutoff: churned under a 14-day window, not under umbra's
    for _, row in churn.iterrows():
        c, when = pd.Timestamp(row.cutoff_date), cancelled_on.get(row.user_id)
        assert bool(row.is_churned) == (when is not None and c <= when < c + pd.Timedelta(days=7)), (row.user_id, c)
        second_week += when is not None and c + pd.Timedelta(days=7) <= when < c + pd.Timedelta(days=14)
    assert second_week > 0


def test_whole_history_candidates_and_scores_are_point_in_time(world):
    """Every user who comes back after a cutoff has candidates, inactive or not; SAR's score of a
    candidate is SAR fitted on the interactions before the cutoff, nothing after it."""
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    ex = con.execute("select * from ranking_examples where tenant_id = 'acme'").df()
    con.close()
    assert ex["is_history_candidate"].any() and ex["user_item_sar_score"].notna().any()
    lake = _lake(settings, "acme")
    lake = lake[lake.event_type == "click"].assign(d=lake.event_at.dt.tz_convert("UTC").dt.date)
    c = max(ex.cutoff_date)
    c = c.date() if hasattr(c, "date") else c
    back = set(
        lake[(lake.d >= c) & (lake.d < c + timedelta(days=28)) & lake.user_id.isin(lake[lake.d < c].user_id)].user_id
    )
    assert back == set(ex[pd.to_datetime(ex.cutoff_date).dt.date == c].user_id)
    daily = lake[lake.d < c].groupby(["user_id", "item_id", "d"]).size().rename("interactions").reset_index()
    data = recsys.Interactions.from_events(
        daily.assign(event_at=pd.to_datetime(daily.d).dt.tz_localize("UTC")), pd.Timestamp(c)
    )
    sar = recsys.fitted(candidates.SCORERS["sar"](), data)
    at = ex[(pd.to_datetime(ex.cutoff_date).dt.date == c) & ex.user_item_sar_score.notna()].sample(200, random_state=1)
    expected = sar.score(sar.history(data)[data.rows(at.user_id.to_numpy())])[
        np.arange(len(at)), data.columns(at.item_id.to_numpy())
    ]
    assert np.allclose(at.user_item_sar_score.to_numpy(), expected, rtol=1e-5)
    seen = daily.groupby("user_id").item_id.nunique()
    assert (at.user_history_items.to_numpy() == seen.loc[at.user_id].to_numpy()).all()


def test_a_training_cutoffs_candidates_are_made_for_its_queries_only(world):
    """At a training cutoff candidates are generated and scored only for the users who come back after it (the
    re-ranker's queries, all ranking_examples keeps), not for every user active in the feature window before it: a
    clickstream whose visitors mostly come once scored them all at every cutoff, and its 100,000 visitors ran the
    features build out of 24 GiB (benchmarks/README.md, *A shop's clickstream*)."""
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    made, queries, active = (
        set(map(tuple, con.execute(f"select distinct cutoff_date, user_id from {table} join int_feature_cutoffs "
                                   "using (tenant_id, cutoff_date) where tenant_id = 'acme' and has_ranking_label "
                                   "and not is_serving").fetchall()))
        for table in ("int_recommendation_candidates__history", "ranking_examples", "int_user_features__as_of")
    )  # fmt: skip
    serving = con.execute("select count(distinct user_id) from ranking_candidates where tenant_id = 'acme'").fetchone()[
        0
    ]
    with_history = con.execute(
        "select count(distinct user_id) from interaction_history where tenant_id = 'acme'"
    ).fetchone()[0]
    con.close()
    assert made == queries and len(queries) > 100
    assert len(active - queries) > 10  # active before a cutoff, not back after it: no candidates there
    assert serving == with_history  # at the serving cutoff, every user with history


def test_whole_history_candidates_scored_in_parts_are_the_rows_scored_at_once(world):
    """A cutoff's users are read and scored in parts of about ``candidates_part_rows`` source rows (one user's rows
    in one part), so memory holds a part and not a tenant: a 100,000-visitor clickstream's serving cutoff is 6.4
    million rows (benchmarks/README.md, *A shop's clickstream*). Parts of 2,000 rows (a cutoff of the world holds more
    than five times that) give the rows the one-part build gave, every column equal."""
    settings, _, _ = world
    wh = [w for w in warehouses(TenantStore(settings).list()) if w.key == "eu/pool"][0]
    table = "int_recommendation_candidates__history"

    def rows() -> pd.DataFrame:
        con = _con(settings, "eu/pool")
        try:
            return con.execute(f"select * from {table} order by all").df()
        finally:
            con.close()

    def largest_cutoff() -> int:  # source rows, which the parts are counted in
        con = _con(settings, "eu/pool")
        try:
            return con.execute(
                "select max(n) from (select count(*) as n from int_recommendation_candidates__as_of "
                "group by tenant_id, cutoff_date)"
            ).fetchone()[0]
        finally:
            con.close()

    whole, largest = rows(), largest_cutoff()
    vars_ = dbt.dbt_vars(settings, wh) | {"candidates_part_rows": 2_000}
    with warehouse_lock(wh.path(settings)):
        res = dbt.run_dbt(["run", "--select", table], settings, wh, vars_)
    assert res["success"], res
    assert largest > 5 * 2_000  # parts, many of them
    pd.testing.assert_frame_equal(rows(), whole)


def test_churn_labels_come_only_from_after_the_cutoff(world):
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    ex = con.execute("select * from churn_examples where tenant_id = 'globex'").df()
    con.close()
    lake = _lake(settings, "globex")
    cancels = lake[lake.event_type == "cancel_subscription"].groupby("user_id").event_at.min().dt.date
    assert len(ex) > 50 and ex.is_churned.any()
    for _, row in ex.iterrows():
        c = row.cutoff_date.date() if hasattr(row.cutoff_date, "date") else row.cutoff_date
        when = cancels.get(row.user_id)
        assert when is None or when >= c, "a user who cancelled before the cutoff is not an example"
        assert bool(row.is_churned) == (when is not None and when < c + timedelta(days=14))


def test_a_tenant_without_cancellations_churns_by_inactivity(world):
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    definitions = dict(con.execute("select * from int_tenant_churn_definitions").fetchall())
    ex = con.execute("select * from churn_examples where tenant_id = 'clicky'").df()
    con.close()
    assert definitions["clicky"] == "inactivity" and definitions["globex"] == "cancellation"
    lake = _lake(settings, "clicky")
    days = lake.assign(d=lake.event_at.dt.tz_convert("UTC").dt.date).groupby("user_id").d.unique()
    assert len(ex) > 50 and 0 < ex.is_churned.mean() < 1
    for _, row in ex.iterrows():
        c = row.cutoff_date.date() if hasattr(row.cutoff_date, "date") else row.cutoff_date
        back = any(c <= d < c + timedelta(days=14) for d in days[row.user_id])
        assert bool(row.is_churned) == (not back)


def test_events_without_a_session_id_are_sessions_30_minutes_apart(world):
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    got = con.execute(
        "select user_id, activity_date, sessions from int_user_activity__daily where tenant_id = 'clicky'"
    )
    got = got.df().set_index(["user_id", "activity_date"])["sessions"]
    con.close()
    lake = _lake(settings, "clicky").sort_values("event_at")
    assert lake.session_id.isna().all()
    lake["d"] = lake.event_at.dt.tz_convert("UTC").dt.date
    gap = lake.groupby(["user_id", "d"]).event_at.diff()
    lake["starts"] = gap.isna() | (gap > pd.Timedelta(minutes=30))
    expected = lake.groupby(["user_id", "d"]).starts.sum()
    expected.index = expected.index.set_names(["user_id", "activity_date"])
    assert expected.gt(1).any(), "some user has two sessions in a day"
    got = {(u, pd.Timestamp(d).date()): int(n) for (u, d), n in got.items()}
    assert got == {key: int(n) for key, n in expected.items()}


@pytest.mark.parametrize("tenant_id, short", [("acme", 7), ("globex", 14)])
def test_engagement_labels_count_the_sessions_of_the_short_window_after_the_cutoff(world, tenant_id, short):
    """The label counts the sessions of the tenant's short window after the cutoff, the baseline
    feature those of the one before it (acme's cadence: 7 days; globex sets a 42-day feature
    window: 14)."""
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    ex = con.execute("select * from engagement_examples where tenant_id = ?", [tenant_id]).df()
    window = con.execute("select short_window_days from int_tenant_windows where tenant_id = ?", [tenant_id]).fetchone()
    # sessions per active day (events without a session id are sessionized by dbt: tested above)
    activity = con.execute(
        "select user_id, activity_date as d, sessions from int_user_activity__daily where tenant_id = ?", [tenant_id]
    ).df()
    con.close()
    assert window == (short,)
    assert len(ex) > 100 and ex.sessions_next_short.gt(0).mean() > 0.3
    activity["d"] = pd.to_datetime(activity.d).dt.date
    daily = activity.set_index(["user_id", "d"]).sessions
    for _, row in ex.sample(40, random_state=1).iterrows():
        c = row.cutoff_date.date() if hasattr(row.cutoff_date, "date") else row.cutoff_date
        mine = daily.get(row.user_id, pd.Series(dtype=int))
        expected = sum(n for d, n in mine.items() if c <= d < c + timedelta(days=short))
        assert row.sessions_next_short == expected, (row.user_id, c)
        assert row.sessions_short == sum(n for d, n in mine.items() if c - timedelta(days=short) <= d < c)


def test_global_topic_popularity_uses_only_sharing_tenants_at_a_weekly_rate(world):
    """acme and globex share data, umbra does not; globex's short window is 14 days, so its clicks
    count half per week."""
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    g = con.execute("select topic, weekly_clicks, contributing_tenants from global_topic_popularity").df()
    by_hand = con.execute(
        "select topic, sum(case tenant_id when 'globex' then clicks_short / 2.0 else clicks_short end) as weekly_clicks "
        "from item_features where tenant_id in ('acme', 'globex') group by topic"
    ).df()
    with_umbra = con.execute("select sum(clicks_short) from item_features").fetchone()[0]
    con.close()
    g, by_hand = g.set_index("topic").sort_index(), by_hand.set_index("topic").sort_index()
    assert np.allclose(g.weekly_clicks, by_hand.weekly_clicks.loc[g.index]) and len(g) == len(by_hand)
    assert g.weekly_clicks.sum() < with_umbra and g.contributing_tenants.max() <= 2


def test_every_model_that_reads_the_sharing_tenants_is_rebuilt_without_a_held_back_one(world):
    """A model that reads ``var('sharing_tenants')`` aggregates over tenants: it carries the ``cross_tenant`` tag,
    which ``features.build_and_check_warehouse`` rebuilds without the tenants its checks held back."""
    _, _, results = world
    manifest = json.loads((Path(results["eu/pool"]["target_dir"]) / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    reading = {n["name"]: n["tags"] for n in models if "sharing_tenants" in n["raw_code"]}
    assert "global_topic_popularity" in reading
    assert all(features.CROSS_TENANT_TAG in tags for tags in reading.values()), reading


def test_features_are_discovered_from_the_manifest(world):
    settings, _, results = world
    manifest = json.loads((Path(results["eu/pool"]["target_dir"]) / "manifest.json").read_text())
    declared = dbt.feature_columns(manifest, "ranking_examples")
    names = [f["name"] for f in declared]
    assert "user_item_topic_affinity_long" in names and "item_trending_score" in names
    assert "is_clicked" not in names and "tenant_id" not in names
    assert all(f["entity"] and f["owner"] and "shareable" in f for f in declared)
    con = _con(settings, "eu/pool")
    columns = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_name = 'ranking_examples'"
        ).fetchall()
    }
    con.close()
    assert set(names) <= columns
    with pytest.raises(KeyError, match="not in the manifest"):
        dbt.feature_columns(manifest, "no_such_model")


def test_dbt_docs_open_offline_with_exposures_for_every_mart_the_kinds_read_and_owners(world):
    """`tenantflow features docs`: one self-contained page per warehouse; dbt's lineage runs past
    the marts to what reads them, as the model kinds declare it; every model has an owner."""
    import re

    from ml.core.warehouse import warehouses
    from ml.data.dbt import generate_docs
    from ml.models import kinds

    settings, _, _ = world
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "eu/pool")
    page = generate_docs(settings, wh)
    html = page.read_text()
    assert "serving_api" in html and "ranking_examples" in html  # the manifest and catalog are inlined
    assert not [u for u in re.findall(r'(?:src|href)=["\'](https?://[^"\']+)', html) if "[::1]" not in u]
    manifest = json.loads((page.parent / "manifest.json").read_text())
    reads = {
        e["name"]: {n.rsplit(".", 1)[-1] for n in e["depends_on"]["nodes"]} for e in manifest["exposures"].values()
    }
    history = {k.history_mart[0] for k in kinds.all_kinds() if k.history_mart}
    assert reads["training_snapshots"] == set(kinds.training_marts()) | set(kinds.serving_marts())
    assert reads["batch_predictions"] == set(kinds.serving_marts()) | history
    assert reads["serving_api"] == set(kinds.online_marts())
    owners = {g["name"]: g["owner"]["name"] for g in manifest["groups"].values()}
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert models and all(owners.get(n["group"]) for n in models), [n["name"] for n in models if not n["group"]]


def test_feature_checks_flag_broken_marts(world):
    settings, _, _ = world
    con = _con(settings, "eu/pool")
    frames = {
        m: con.execute(f"select * from {m} where tenant_id = 'acme'").df() for m in ("user_features", "item_features")
    }
    con.close()
    good = check_features(frames, "acme", settings)
    assert good["healthy"] and good["feature_rows"]["user_features"] == len(frames["user_features"])
    bad_users = frames["user_features"].copy()
    bad_users.loc[bad_users.index[0], "completion_rate_long"] = 1.7
    bad_users = pd.concat([bad_users, bad_users.head(1)])
    bad = check_features({**frames, "user_features": bad_users}, "acme", settings)
    assert not bad["healthy"]
    assert any("expect_compound_columns_to_be_unique" in p for p in bad["health_problems"])
    assert any("completion_rate_long" in p for p in bad["health_problems"])
    empty = check_features({**frames, "item_features": frames["item_features"].head(0)}, "acme", settings)
    assert any("expect_table_row_count_to_be_between" in p for p in empty["health_problems"])
    # items, but no interaction in the window (a tenant whose events are none of its interaction types): says so
    unread = check_features(
        {**frames, "item_features": frames["item_features"].assign(clicks_long=0)}, "acme", settings
    )
    [problem] = unread["health_problems"]
    assert "expect_column_sum_to_be_between(clicks_long)" in problem and "--interaction-types" in problem, problem
    # a user last active 40 days ago is within a 42-day feature window (a slower tenant's), not 28
    away = frames["user_features"].copy()
    away.loc[away.index[0], "days_since_last_activity"] = 40
    assert check_features({**frames, "user_features": away}, "acme", settings, feature_window_days=42)["healthy"]
    assert any(
        "days_since_last_activity" in p
        for p in check_features({**frames, "user_features": away}, "acme", settings)["health_problems"]
    )


BUILD = """
import json, logging, sys
from ml.core.tenants import TenantStore
from ml.core.warehouse import warehouses
from ml.data.features import build_warehouse
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
wh = [w for w in warehouses(TenantStore().list()) if w.key == "eu/pool"][0]
r = build_warehouse(wh)
print(json.dumps({"failed": r["failed_nodes"], "success": r["success"]}))
"""


def _rows_per_tenant(settings, key: str) -> dict[tuple[str, str], int]:
    """(table, tenant) -> rows, over every table and view of a warehouse file with a tenant_id column."""
    con = _con(settings, key)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.columns where column_name = 'tenant_id' order by 1"
            ).fetchall()
        ]
        return {
            (t, tid): n
            for t in tables
            for tid, n in con.execute(f"select tenant_id, count(*) from {t} group by 1").fetchall()
        }
    finally:
        con.close()


def test_building_one_tenant_builds_its_whole_shared_warehouse(world):
    """dbt rebuilds a file's table marts whole: a build named for one tenant of the pool (CLI or
    DAG) builds every tenant of that file, so the others' rows are still there after it."""
    from ml.ops.cli import main

    settings, _, _ = world
    pool = {"acme", "globex", "umbra", "clicky", "viewy"}
    plan = features.plan_builds({"tenants": ["acme"]}, [], 1, settings)
    assert [(p["key"], set(p["tenants"])) for p in plan] == [("eu/pool", pool)]
    before = _rows_per_tenant(settings, "eu/pool")
    assert {tid for _, tid in before} == pool and ("interaction_history", "globex") in before
    assert main(["features", "build", "--tenant", "acme"]) == 0
    assert _rows_per_tenant(settings, "eu/pool") == before


def test_a_build_waits_for_the_warehouse_lock_and_then_succeeds(world, tmp_path):
    """Another process holds the warehouse's lock (as a second build, a snapshot or a scoring would):
    a build says it waits, leaves the file alone until the lock is released, then builds."""
    settings, _, _ = world
    wh = [w for w in warehouses(TenantStore(settings).list()) if w.key == "eu/pool"][0]
    path = wh.path(settings)
    before = path.stat().st_mtime_ns
    err_file = tmp_path / "build.err"
    with warehouse_lock(path), err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", BUILD], stdout=subprocess.PIPE, stderr=err, text=True, env=os.environ.copy()
        )
        deadline = time.monotonic() + 300
        while "waiting for the lock on warehouse pool.duckdb" not in err_file.read_text():
            assert proc.poll() is None, err_file.read_text()[-2000:]
            assert time.monotonic() < deadline, "the build never reached the lock"
            time.sleep(0.2)
        assert proc.poll() is None and path.stat().st_mtime_ns == before  # it waits, and writes nothing
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, err_file.read_text()[-2000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["success"] and res["failed"] == []
    assert "got the lock on warehouse pool.duckdb" in err_file.read_text()
    assert path.stat().st_mtime_ns != before


def test_a_join_that_ignores_tenant_id_is_caught(world, tmp_path, monkeypatch):
    settings, _, _ = world
    project = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "intermediate" / "int_ranking_features__as_of.sql"
    sql = model.read_text()
    broken = sql.replace(
        "        on candidates.tenant_id = item_features.tenant_id\n        and candidates.item_id",
        "        on candidates.item_id",
    )
    assert broken != sql
    model.write_text(broken)
    monkeypatch.setenv("TENANTFLOW_DBT_PROJECT_DIR", str(project))
    s = get_settings()
    wh = [w for w in warehouses(TenantStore(s).list()) if w.key == "eu/pool"][0]
    shutil.copy(wh.path(settings), tmp_path / "copy.duckdb")
    res = features.build_warehouse(wh, s)
    failed = {n["node"].split(".")[2] for n in res["failed_nodes"]}
    assert any(
        f.startswith(
            (
                "unique_combination_int_ranking_features",
                "unique_combination_ranking_examples",
                "same_tenant_ranking_examples",
            )
        )
        for f in failed
    ), failed


@pytest.mark.parametrize("tenant", ["clicky", "viewy"])
def test_a_click_only_young_tenant_gets_a_champion_from_the_train_dags_tasks(world, tenant):
    """The train DAG's tasks (snapshot, then a chunk's training under the one health rule) give a
    tenant that sends only clicks, or only views it declared its interactions, with 26 days of
    history and no global model, a recommender champion: a classic family trained on its own
    history wins its holdout."""
    from ml.models import registry
    from ml.models.runs import snapshot_warehouse, train_chunk

    settings, _, _ = world
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == "eu/pool")
    snapshot_warehouse(wh, [tenant], settings)
    [r] = train_chunk([tenant], ["recommender"], "features", settings=settings)
    assert r.get("promoted") is True, r
    assert r["family"] != "lightgbm" and r["eligibility"].startswith("26 days of history")
    champ = registry.version_by_alias(f"recommender.{tenant}", "champion", settings)
    assert champ is not None and champ.tags["family"] == r["family"] and champ.tags["trained_on"] == "tenant"
    assert champ.tags["interaction_types"] == ("view" if tenant == "viewy" else "click,purchase,add_to_cart,rating")
