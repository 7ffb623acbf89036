"""The classic recommender families on toy histories, against values computed by hand."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from ml.core import sealed_files
from ml.core.settings import get_settings
from ml.core.tenant_parquet import TenantKeyError
from ml.core.tenants import Tenant, TenantStore
from ml.models import fit, ranking, recsys
from ml.models.kinds import get_kind

AS_OF = pd.Timestamp("2026-01-31", tz="UTC")


def _events(pairs: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, days before AS_OF) -> an events frame."""
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in pairs],
            "item_id": [i for _, i, _ in pairs],
            "event_at": [AS_OF - pd.Timedelta(days=d) for _, _, d in pairs],
        }
    )


# a: x, y   b: x, y, z   c: y, z   -> users per item x 2, y 3, z 2
TOY = _events(
    [("a", "x", 3), ("a", "y", 2), ("b", "x", 5), ("b", "y", 5), ("b", "z", 1), ("c", "y", 9), ("c", "z", 40)]
)


def _data() -> recsys.Interactions:
    return recsys.Interactions.from_events(TOY, AS_OF)


def _lists(frame: pd.DataFrame) -> dict[str, list[str]]:
    return {u: list(g.sort_values("rank")["item_id"]) for u, g in frame.groupby("user_id")}


def test_interactions_index_users_items_and_leave_out_events_from_as_of_on():
    late = pd.concat([TOY, _events([("d", "w", 0)]).assign(event_at=AS_OF)], ignore_index=True)
    data = recsys.Interactions.from_events(late, AS_OF)
    assert list(data.users) == ["a", "b", "c"] and list(data.items) == ["x", "y", "z"]
    assert data.seen.toarray().tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    assert list(data.rows(np.array(["c", "nobody", "a"]))) == [2, -1, 0]
    # a half-life of 9 days halves c's 9-day-old y
    assert data.decayed(9.0).toarray()[2, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no interaction before"):
        recsys.Interactions.from_events(TOY, pd.Timestamp("2025-01-01", tz="UTC"))


def test_a_pairs_weights_do_not_depend_on_the_order_events_come_in():
    # DuckDB returns a tenant's events in any order; SAR's scores must not change with it
    rng = np.random.default_rng(0)
    days = rng.random(20_000) * 90
    events = _events(
        [(f"u{u}", f"i{i}", 0) for u, i in zip(rng.integers(0, 5, 20_000), rng.integers(0, 4, 20_000), strict=True)]
    )
    events = events.assign(event_at=AS_OF - pd.to_timedelta(days, unit="D"), interactions=rng.integers(1, 9, 20_000))
    shuffled = events.sample(frac=1.0, random_state=1)
    for half_life in (3.0, 30.0):
        once = recsys.Interactions.from_events(events, AS_OF).decayed(half_life)
        again = recsys.Interactions.from_events(shuffled, AS_OF).decayed(half_life)
        assert np.array_equal(once.toarray(), again.toarray())


def test_popularity_counts_distinct_users_all_time_or_in_a_window():
    data = _data()
    assert recsys.Popularity().fit(data).item_scores.tolist() == [2, 3, 2]
    # last 4 days: a's x (3) and y (2), b's z (1); b's x, y are 5 days old, c's 9 and 40
    assert recsys.Popularity(window_days=4).fit(data).item_scores.tolist() == [1, 1, 1]


def test_sar_jaccard_similarity_and_scores_by_hand():
    model = recsys.SAR("jaccard", half_life_days=None).fit(_data())
    # co-occurrence x-y 2, x-z 1, y-z 2; Jaccard = c_ij / (c_ii + c_jj - c_ij)
    expected = np.array([[0, 2 / 3, 1 / 3], [2 / 3, 0, 2 / 3], [1 / 3, 2 / 3, 0]])
    assert np.allclose(model.similarity.toarray(), expected)
    # a (x, y): z scores 1/3 + 2/3
    assert np.allclose(model.score(model.history(_data())[[0]]), [[2 / 3, 2 / 3, 1.0]])


def test_item_knn_is_cosine_between_item_columns_with_bounded_neighbours():
    model = recsys.ItemKNN(neighbours=1).fit(_data())
    sim = model.similarity.toarray()
    # cos(x, y) = 2 / sqrt(2 * 3); cos(x, z) = 1 / 2; each item keeps its one nearest
    assert sim[0].tolist() == pytest.approx([0, 2 / np.sqrt(6), 0])
    assert (sim > 0).sum(axis=1).tolist() == [1, 1, 1]


def test_ease_solves_its_constrained_least_squares_column_by_column():
    data = _data()
    l2 = 0.5
    b = recsys.EASE(l2=l2).fit(data).b
    x = data.seen.toarray().astype(np.float64)
    gram = x.T @ x
    assert np.allclose(np.diag(b), 0)
    for j in range(3):
        others = [i for i in range(3) if i != j]
        # min ||X_j - X_others b||^2 + l2 ||b||^2  ->  (G_oo + l2 I) b = G_oj
        solved = np.linalg.solve(gram[np.ix_(others, others)] + l2 * np.eye(2), gram[others, j])
        assert np.allclose(b[others, j], solved, atol=1e-5)
    with pytest.raises(ValueError, match="use ALS"):
        recsys.EASE(max_items=2).fit(data)


def test_recommend_excludes_seen_items_or_allows_repeats_and_falls_back_to_popularity():
    data = _data()
    model = recsys.SAR("jaccard", half_life_days=None).fit(data)
    users = np.array(["a", "new"])
    excluded = _lists(recsys.recommend(model, data, users, k=3))
    assert excluded == {"a": ["z"], "new": ["y", "x", "z"]}  # a saw x and y; new: popularity, ties by id
    allowed = _lists(recsys.recommend(model, data, users, k=2, exclude_seen=False))
    assert allowed == {"a": ["z", "x"], "new": ["y", "x"]}  # x and y tie at 2/3: lower id first


def test_every_family_round_trips_through_its_files_without_pickle(tmp_path):
    data = _data()
    users = np.array(["a", "b", "c", "new"])
    for family in (
        recsys.Popularity(window_days=4),
        recsys.ItemKNN(neighbours=1),
        recsys.SAR("lift", half_life_days=7.0),
        recsys.EASE(l2=0.5),
        recsys.ALS(factors=2, iterations=3),
    ):
        family.fit(data)
        recsys.save(family, tmp_path / family.name)
        loaded = recsys.load(tmp_path / family.name)
        assert type(loaded) is type(family) and list(loaded.items) == ["x", "y", "z"]
        before = recsys.recommend(family, data, users, k=3, exclude_seen=False)
        after = recsys.recommend(loaded, data, users, k=3, exclude_seen=False)
        pd.testing.assert_frame_equal(before, after)


def test_a_silo_tenants_family_is_sealed_and_reads_only_with_its_key(settings, monkeypatch):
    """A silo tenant's classic family holds its catalogue's item ids (``arrays.npz`` stores them as
    UTF-32): its files are sealed, in no encoding in their bytes, and read with the tenant's key."""
    TenantStore(settings).add(Tenant("initech", "us", isolation="silo", share_data=False))
    data = _data()
    model = recsys.ItemKNN(neighbours=2).fit(data)
    folder = settings.home / "model"
    catalogue = "xyz".encode("utf-32-le")  # the item ids as the array stores them
    recsys.save(model, settings.home / "plain")
    assert catalogue in b"".join((settings.home / "plain" / f).read_bytes() for f in recsys.FILES)
    recsys.save(model, folder, sealed_files.writer_key(settings, "initech"))
    raw = b"".join((folder / f).read_bytes() for f in recsys.FILES)
    assert all(sealed_files.is_sealed(folder / f) for f in recsys.FILES)
    assert catalogue not in raw and b"ItemKNN" not in raw
    with pytest.raises(ValueError, match="sealed; read them with their tenant's key"):
        recsys.load(folder)
    loaded = recsys.load(folder, partial(sealed_files.read_bytes, settings=settings, tenant_id="initech"))
    users = np.array(["a", "b", "c"])
    pd.testing.assert_frame_equal(
        recsys.recommend(model, data, users, k=3, exclude_seen=False),
        recsys.recommend(loaded, data, users, k=3, exclude_seen=False),
    )
    monkeypatch.setenv("TENANTFLOW_KEYS_PROVIDER", "env")
    monkeypatch.setenv("TENANTFLOW_KEYS_VALUES", '{"initech": "' + "1" * 64 + '"}')
    with pytest.raises(TenantKeyError, match=r"tenant initech: .*family\.json does not open"):
        recsys.load(folder, partial(sealed_files.read_bytes, settings=get_settings(), tenant_id="initech"))


def test_a_model_file_that_needs_unpickling_is_refused(tmp_path):
    recsys.save(recsys.Popularity().fit(_data()), tmp_path)
    np.savez(tmp_path / "arrays.npz", items=np.array(["x", "y", "z"]), item_scores=np.array([object()] * 3))
    with pytest.raises(ValueError, match="allow_pickle"):
        recsys.load(tmp_path)


def test_history_is_indexed_by_the_models_catalogue():
    """A served model scores today's history: new items are ignored, its own items keep their columns."""
    model = recsys.SAR("jaccard", half_life_days=None).fit(_data())
    today = _events([("a", "x", 1), ("a", "brand-new", 1), ("d", "z", 2)])
    history = recsys.Interactions.from_events(today, AS_OF, items=model.items)
    assert list(history.items) == ["x", "y", "z"] and history.seen.toarray().tolist() == [[1, 0, 0], [0, 0, 1]]
    top = _lists(recsys.recommend(model, history, np.array(["a", "d"]), k=2))
    assert top == {"a": ["y", "z"], "d": ["y", "x"]}  # a: y 2/3 > z 1/3; d (z): y 2/3, x 1/3
    with pytest.raises(ValueError, match="indexed by"):
        recsys.recommend(model, recsys.Interactions.from_events(today, AS_OF), np.array(["a"]), k=1)


def test_als_user_vectors_solve_the_implicit_packages_equation():
    data = _data()
    model = recsys.ALS(factors=2, l2=0.1, alpha=3.0, iterations=5).fit(data)
    from implicit.cpu.als import AlternatingLeastSquares

    ref = AlternatingLeastSquares(factors=2, regularization=0.1, alpha=3.0)
    ref.item_factors = model.item_factors.copy()
    ref.user_factors = np.zeros((3, 2), dtype=np.float32)
    counts = data.counts
    for row in range(3):
        expected = ref.recalculate_user(row, counts[row])
        assert np.allclose(model.user_vectors(counts[row]), expected, atol=1e-4)


def test_als_learns_two_communities():
    """Users of one block of items get that block's unseen item, never the other block's."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        block = u % 2
        for i in rng.choice(10, size=6, replace=False):
            rows.append((f"u{u}", f"{'ab'[block]}{i}", int(rng.integers(1, 30))))
    data = recsys.Interactions.from_events(_events(rows), AS_OF)
    model = recsys.ALS(factors=4, l2=1.0, iterations=20).fit(data)
    top = recsys.recommend(model, data, np.array([f"u{u}" for u in range(60)]), k=3)
    block_of_user = top["user_id"].str[1:].astype(int) % 2
    assert (top["item_id"].str[0] == block_of_user.map({0: "a", 1: "b"})).mean() > 0.95


def test_the_ranking_holdout_judges_every_user_active_in_the_window_under_the_seen_items_policy():
    from ml.models import ranking

    cutoff = pd.Timestamp("2026-01-10")
    history = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "c"],
            "item_id": ["x", "x", "y", "z", "x"],
            "event_date": [cutoff - pd.Timedelta(days=3), cutoff, cutoff + pd.Timedelta(days=1), cutoff, cutoff],
            "interactions": [1, 1, 2, 1, 1],
        }
    )
    examples = pd.DataFrame({"cutoff_date": [cutoff] * 2, "user_id": ["a", "a"], "item_id": ["x", "y"]})
    excluded = ranking.RankingHoldout.build(history, examples, window_days=7)
    assert list(excluded.users) == ["a", "b", "c"]  # b and c were not in the re-ranker's candidates
    assert sorted(map(tuple, excluded.relevant.to_numpy())) == [("a", "y"), ("b", "z"), ("c", "x")]
    allowed = ranking.RankingHoldout.build(history, examples, window_days=7, exclude_seen=False)
    assert sorted(map(tuple, allowed.relevant.to_numpy())) == [("a", "x"), ("a", "y"), ("b", "z"), ("c", "x")]
    # a re-ranker that puts the consumed x first: left out under exclude; b and c get the cold-start list (x)
    lists = excluded.reranker_lists(np.array([2.0, 1.0]))
    assert _lists(lists) == {"a": ["y"], "b": ["x"], "c": ["x"]}
    assert _lists(allowed.reranker_lists(np.array([2.0, 1.0])))["a"] == ["x", "y"]
    judged = excluded.judge(lists)
    assert judged.metrics["hit_rate_at_10"] == pytest.approx(2 / 3) and list(judged.per_user_ndcg) == [1.0, 0.0, 1.0]
    assert excluded.candidate_recall() == pytest.approx(1 / 3)


def test_a_longer_label_window_holds_out_an_earlier_cutoff_and_purges_the_training_cutoffs_before_it():
    """(The window itself, from a tenant's setting or cadence, is int_tenant_windows' dbt unit test.)"""
    from ml.models import fit

    cutoffs = pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"])
    frame = pd.DataFrame({"cutoff_date": cutoffs, "v": range(4)})
    # a 21-day window holds out an earlier cutoff, and trains only on cutoffs whose 21 days end by it
    train, holdout = fit.time_holdout(frame, 21, latest=pd.Timestamp("2026-02-02") - pd.Timedelta(days=21))
    assert list(holdout["v"]) == [1] and list(train["v"]) == []
    train, holdout = fit.time_holdout(frame, 7)
    assert list(holdout["v"]) == [3] and list(train["v"]) == [0, 1, 2]
    # Jan 12's 14 days end on the Jan 26 holdout's cutoff (kept); Jan 19's reach past it (purged)
    train, holdout = fit.time_holdout(frame, 14)
    assert list(holdout["v"]) == [3] and list(train["v"]) == [0, 1]


def test_the_winner_is_refitted_on_as_many_cutoffs_as_it_trained_on_from_the_holdouts_back():
    from ml.models import fit
    from ml.models.refit import cutoff_span, refit_rows

    cutoffs = pd.date_range("2026-01-05", periods=8, freq="7D")  # Jan 5 .. Feb 23
    frame = pd.DataFrame({"cutoff_date": cutoffs.repeat(2), "v": range(16)})
    # a 14-day window, the holdout on Feb 9 (its window is complete by Feb 23): training purged
    # to Jan 26 and before; the refit takes as many cutoffs (four), Feb 9 back to Jan 19
    train, holdout = fit.time_holdout(frame, 14, latest=pd.Timestamp("2026-02-09"))
    assert cutoff_span(holdout) == "2026-02-09..2026-02-09" and cutoff_span(train) == "2026-01-05..2026-01-26"
    rows = refit_rows(frame, train, holdout)
    assert cutoff_span(rows) == "2026-01-19..2026-02-09" and len(rows) == 8
    assert refit_rows(frame, train.iloc[:0], holdout).empty and refit_rows(frame, train, holdout.iloc[:0]).empty
    # a snapshot from before dbt labelled the refit cutoffs (the holdout and the purged ones only):
    # nothing one step apart to refit on, so the judged model serves
    old = frame[~frame["cutoff_date"].isin(pd.to_datetime(["2026-02-02", "2026-02-16", "2026-02-23"]))]
    assert cutoff_span(old) == "2026-01-05..2026-02-09" and refit_rows(old, train, holdout).empty


def test_ties_at_the_kth_place_go_to_the_lower_item_id():
    from ml.models.recsys.interactions import _top_k

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        k = int(rng.integers(1, n + 1))
        s = rng.integers(0, 3, size=(4, n)).astype(np.float32)
        s[rng.random((4, n)) < 0.2] = -np.inf
        got = _top_k(np.array(["a", "b", "c", "d"]), np.array([f"i{j:02d}" for j in range(n)]), s, k)
        for r, user in enumerate("abcd"):
            expected = sorted((j for j in range(n) if np.isfinite(s[r, j])), key=lambda j: (-s[r, j], j))[:k]
            assert list(got[got["user_id"] == user]["item_id"]) == [f"i{j:02d}" for j in expected]


# few tied values a row (compared value by value, in chunks), and many (the rows' index sort instead)
@pytest.mark.parametrize(("tied_values", "items"), [(3, 60), (30, 200)])
def test_ranks_at_are_the_stable_descending_sort_s_ranks_ties_to_the_lower_item(tied_values, items):
    from ml.models.recsys.interactions import ranks_at, top_mask

    rng = np.random.default_rng(tied_values)
    for _ in range(100):
        users, n = int(rng.integers(1, 12)), int(rng.integers(items // 2, items + 1))
        s = (rng.integers(-2, tied_values, size=(users, n)) * rng.choice([1.0, 0.37])).astype(np.float32)
        s[rng.random(s.shape) < 0.2] = -np.inf  # a consumed item under the exclude policy
        s[rng.random(s.shape) < 0.1] = -0.0  # equal to 0.0, though its bits differ
        rows, cols = np.nonzero(rng.random(s.shape) < 0.5)
        shuffled = rng.permutation(len(rows))
        rows, cols = rows[shuffled], cols[shuffled]
        expected = [
            np.nan
            if not np.isfinite(s[r, c])
            else 1 + sum(s[r, j] > s[r, c] or (s[r, j] == s[r, c] and j < c) for j in range(n))
            for r, c in zip(rows, cols, strict=True)
        ]
        assert np.array_equal(ranks_at(s, rows, cols), np.array(expected, dtype=float), equal_nan=True)
        k = int(rng.integers(0, n + 2))
        by_hand = [sorted(range(n), key=lambda j, r=r: (-s[r, j], j))[:k] for r in range(users)]
        assert [list(np.flatnonzero(row)) for row in top_mask(s, k)] == [sorted(top) for top in by_hand]
    with pytest.raises(ValueError, match="float32"):
        ranks_at(np.zeros((1, 2)), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="non-negative"):
        ranks_at(np.zeros((1, 2), dtype=np.float32), np.array([0]), np.array([-1]))


def test_a_model_file_that_does_not_fit_its_catalogue_is_refused(tmp_path):
    data = _data()
    knn = recsys.fitted(recsys.ItemKNN(neighbours=2), data)
    recsys.save(knn, tmp_path)
    with np.load(tmp_path / "arrays.npz") as z:
        arrays = {name: z[name] for name in z.files}
    for broken in (
        {"indices": arrays["indices"] + 10_000_000},  # would make scipy read past its arrays
        {"items": arrays["items"][::-1].copy()},  # unsorted: history would be silently dropped
        {"popularity": arrays["popularity"][:2]},
    ):
        np.savez(tmp_path / "arrays.npz", **(arrays | broken))
        with pytest.raises(ValueError, match="not a valid ItemKNN model"):
            recsys.load(tmp_path)


def test_a_user_whose_history_the_model_does_not_know_gets_the_catalogues_popularity_online_and_in_batch():
    from ml.models.recsys import served

    model = recsys.fitted(recsys.SAR("jaccard", half_life_days=None), _data())
    rows = pd.DataFrame({"user_id": ["a", "new"], "item_id": ["x", "unseen"], "interactions": [1, 1]}).assign(
        event_date=AS_OF.tz_localize(None) - pd.Timedelta(days=2), cutoff_date=AS_OF.tz_localize(None)
    )
    batch = _lists(served.serve_lists(model, rows, np.array(["a", "new"]), k=3))
    online = _lists(served.serve_lists(model, rows[rows["user_id"] == "new"], np.array(["new"]), k=3))
    assert batch["new"] == online["new"] == ["y", "x", "z"]  # fitted popularity: y 3, x 2, z 2


RANKING_KIND = get_kind("recommender")


def ranking_events(history: pd.DataFrame) -> pd.DataFrame:
    from ml.models import ranking

    return ranking.history_events(history)


def _bursty_history(users: int = 200, seed: int = 0) -> pd.DataFrame:
    """A ratings site: each user rates 8 items of one of two tastes on one day, few come back."""
    rng = np.random.default_rng(seed)
    day, rows = pd.Timestamp("2026-01-01"), []
    for u in range(users):
        taste = "ab"[u % 2]
        when = day + pd.Timedelta(days=int(rng.integers(0, 60)))
        for i in rng.choice(20, size=8, replace=False):
            rows.append((f"u{u}", f"{taste}{i}", when))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_date"]).assign(interactions=1)


def test_a_bursty_tenant_is_judged_by_the_random_protocol_over_its_whole_history():
    from ml.core.tenants import Tenant
    from ml.models import ranking, train

    history = _bursty_history()
    as_of = pd.Timestamp("2026-03-05")
    # the last week judges the few users who rated in it; every user has items held out at random
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    temporal = ranking.RankingHoldout.build(history, examples, window_days=7)
    assert temporal is not None and len(temporal.users) < ranking.MIN_JUDGED_USERS
    judged = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of)
    assert judged.protocol == ranking.RANDOM and len(judged.users) == 200
    # 75/25 of each user's items (8 -> 6 + 2), none of the held-out pairs in what the families learn from
    assert (judged.relevant.groupby("user_id").size() == 2).all()
    held = set(map(tuple, judged.relevant.to_numpy()))
    rows, cols = judged.history.seen.nonzero()
    learned = set(zip(judged.history.users[rows], judged.history.items[cols], strict=True))
    assert not held & learned and len(learned) == 200 * 6
    # the families are judged on every user; a re-ranker cannot be (its features are point in time)
    reranker = fit.Candidate("tenant", None, metrics={})
    candidates = ranking.compete(judged, [reranker], RANKING_KIND, [])
    assert {c.family for c in candidates} >= {"popularity", "item_knn", "ease"} and reranker not in candidates
    best, _ = ranking.choose(candidates)
    assert best.family not in {"popularity", "popularity_7d"}  # two tastes: a personal family wins
    # the temporal holdout judges a few percent of the users with history: it does not speak for
    # them, and the random protocol decides even where re-rankers compete (they are left out)
    assert temporal.judged_share() < ranking.MIN_JUDGED_SHARE
    logged: dict = {}
    judged = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of, True, logged)
    assert judged.protocol == ranking.RANDOM and judged.families_by is None
    assert logged == {
        "holdout_protocol": "random",
        "holdout_users": 200,
        "families_protocol": "random",
        "temporal_judged_share": round(temporal.judged_share(), 3),
    }


def test_a_re_ranker_champion_meets_the_random_protocols_winner_on_the_temporal_holdout_it_replaced():
    """A tenant whose re-ranker became champion while its users returned turns bursty: the random
    protocol now decides and cannot judge the re-ranker. The two meet on the temporal holdout's
    users: a re-ranker better there beyond chance stays, one that is not is replaced."""
    import lightgbm as lgb

    from ml.core.tenants import Tenant
    from ml.models import gate, ranking, train

    history, as_of = _bursty_history(), pd.Timestamp("2026-03-05")
    cutoff = as_of - pd.Timedelta(days=7)
    events = ranking_events(history)
    recent = events[events["event_at"] >= cutoff.tz_localize("UTC")]
    grid = pd.MultiIndex.from_product([sorted(recent["user_id"].unique()), sorted(events["item_id"].unique())])
    examples = grid.to_frame(index=False, name=["user_id", "item_id"]).assign(cutoff_date=cutoff.date())
    relevant = examples.merge(recent[["user_id", "item_id"]].drop_duplicates(), how="left", indicator=True)
    relevant = (relevant["_merge"] == "both").to_numpy()
    # one real booster that scores the feature up: fed the truth it is a perfect re-ranker, fed its
    # negation the worst one (the items the users took last)
    x = pd.DataFrame({"knew": relevant.astype(np.float32)})
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 1}, lgb.Dataset(x, relevant), 5)
    for knew, kept in ((relevant, True), (~relevant, False)):
        frame = examples.assign(knew=knew.astype(np.float32))
        judged = train._ranking_holdout(Tenant("films", "eu"), history, frame, 7, None, as_of, True)
        assert judged.protocol == ranking.RANDOM and judged.temporal is not None
        challenger, _ = ranking.choose(ranking.compete(judged, [], RANKING_KIND, []))
        decision = gate.versus_reranker_on_temporal(RANKING_KIND, "3", booster, ["knew"], challenger, judged)
        assert decision.promote is not kept, decision.reason
        assert f"on the {len(judged.temporal.users)} users of the temporal holdout" in decision.reason
        assert ("beyond chance, kept" in decision.reason) is kept


def _returning_history() -> pd.DataFrame:
    """60 users rate 8 items once; 20 of them come back in the last week with 2 items they had not rated."""
    history = _bursty_history(users=60, seed=1)
    history = history[history["event_date"] < pd.Timestamp("2026-02-26")]
    back = pd.DataFrame([(f"u{u}", f"{'ab'[u % 2]}{19 - j}", pd.Timestamp("2026-02-27")) for u in range(0, 60, 3)
                         for j in range(2)], columns=["user_id", "item_id", "event_date"]).assign(interactions=1)  # fmt: skip
    return pd.concat([history, back], ignore_index=True).drop_duplicates(["user_id", "item_id"], keep="first")


def test_a_small_tenant_whose_users_return_lets_the_random_protocol_pick_the_family_for_its_re_rankers():
    from ml.core.tenants import Tenant
    from ml.models import ranking, train

    history, as_of = _returning_history(), pd.Timestamp("2026-03-05")
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    temporal = ranking.RankingHoldout.build(history, examples, window_days=7)
    assert temporal is not None and len(temporal.users) < ranking.MIN_JUDGED_USERS
    assert temporal.judged_share() >= ranking.MIN_JUDGED_SHARE
    # no re-ranker: the random protocol decides; with re-rankers the temporal holdout judges (them
    # and the families), but the random protocol picks the one family that competes with them
    random = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of)
    assert random.protocol == ranking.RANDOM
    logged: dict = {}
    mixed = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of, True, logged)
    assert mixed.protocol == ranking.TEMPORAL and mixed.families_by is not None
    assert logged == {
        "holdout_protocol": "temporal",
        "holdout_users": len(temporal.users),
        "families_protocol": "random",
        "temporal_judged_share": round(temporal.judged_share(), 3),
    }
    kept = ranking.compete(mixed, [], RANKING_KIND, [])  # the random protocol's family and the popularity lists
    [family] = {c.family for c in kept} - {"popularity", "popularity_7d"}
    assert len(kept) == 3
    by_random = {c.family: c.metrics[ranking.RANDOM_HEADLINE] for c in kept}
    assert by_random[family] == max(c.judged.metrics[ranking.HEADLINE] for c in ranking.judge_families(random))
    assert ranking.choose(kept)[0].family == family


def _judged(family: str, temporal: float, by_random: float | None = None) -> fit.Candidate:
    """A candidate of a small tenant's competition: per-user nDCG on 60 temporal users around
    ``temporal`` and, with ``by_random``, on 200 users of the random protocol's holdout around it."""
    rng = np.random.default_rng(len(family))
    per_user = np.clip(temporal + rng.normal(0, 0.02, 60), 0, 1)
    metrics = {ranking.HEADLINE: float(per_user.mean())}
    if by_random is None:
        return fit.Candidate("tenant", None, metrics=metrics, family=family, per_user=per_user)
    random = np.clip(by_random + rng.normal(0, 0.02, 200), 0, 1)
    metrics[ranking.RANDOM_HEADLINE] = float(random.mean())
    return fit.Candidate("tenant", None, metrics=metrics, family=family, per_user=per_user, random_per_user=random)


def test_where_the_random_protocol_picks_the_family_popularitys_lead_on_the_temporal_holdout_is_only_a_bar():
    """Germany and France judge 14-41 users a window: the random protocol's pick did better on the next
    window than the last window's (benchmarks/holdout_choice.py). Popularity leading the temporal holdout
    neither serves nor blocks the pick; a re-ranker must lead every family there and the pick beyond chance."""
    from ml.models import gate

    popular, ease = _judged("popularity", 0.30, by_random=0.10), _judged("ease", 0.20, by_random=0.25)
    winner, why = ranking.choose([popular, ease])
    assert winner is ease and f"by the random protocol, ndcg_at_10 {ease.metrics[ranking.RANDOM_HEADLINE]:.4f}" in why
    # a popularity champion (chosen on a noisy window) gives way where the random protocol says so beyond
    # the margin, as the gate judges family against family there (gate.family_versus_family)
    assert ranking.choose([popular, ease], incumbent="popularity", margin=0.1)[0] is ease
    assert ranking.choose([popular, ease], incumbent="popularity", margin=0.2)[0] is popular
    baseline = ranking.strongest_popularity([popular, ease])
    decision = gate._first_champion(RANKING_KIND, winner, baseline)
    assert decision.promote and "picked by the random protocol" in decision.reason, decision.reason
    # refused only if a popularity list beat it there (a champion's family kept by choose's incumbent rule)
    assert not gate._first_champion(RANKING_KIND, ease, baseline | {ranking.RANDOM_HEADLINE: 0.3}).promote
    leads_all, below_popularity = _judged(fit.LIGHTGBM, 0.40), _judged(fit.LIGHTGBM, 0.28)
    assert ranking.choose([popular, ease, leads_all])[0] is leads_all
    assert ranking.choose([popular, ease, below_popularity])[0] is ease  # beats the pick, not popularity
    # a popularity list the random protocol picked is said to be, and judged as, that protocol's strongest list
    # (not "the strongest list on the holdout": on the temporal one it may be the weakest)
    recent = _judged("popularity_7d", 0.15, by_random=0.30)
    winner, why = ranking.choose([popular, recent, ease])
    decision = gate._first_champion(RANKING_KIND, winner, ranking.strongest_popularity([popular, recent, ease]))
    assert winner is recent and "best by the random protocol" in why and "temporal 0.15" in why, why
    assert "strongest list by the random protocol" in decision.reason, decision.reason
    # the version's description in the MLflow UI shows the protocol that picked it beside the temporal figure
    from ml.models.tracking import Training, describe

    training = Training(RANKING_KIND, Tenant("films", "eu"), winner, [popular, recent, ease], [], "s1", "m1", "r",
                        0, pd.DataFrame(), ranking.strongest_popularity([popular, recent, ease]), None)  # fmt: skip
    text = describe(training, decision)
    assert f"Random protocol ndcg_at_10: **{recent.metrics[ranking.RANDOM_HEADLINE]:.4f}**" in text, text


def test_a_family_champion_meets_a_family_picked_by_the_random_protocol_on_that_protocols_holdout():
    from ml.core.tenants import Tenant
    from ml.models import gate, train

    history, as_of = _returning_history(), pd.Timestamp("2026-03-05")
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    mixed = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of, True)
    assert mixed.families_by is not None
    kept = ranking.compete(mixed, [], RANKING_KIND, [])
    pick, _ = ranking.choose(kept)
    assert pick.random_per_user is not None and len(pick.random_per_user) == len(mixed.families_by.users)
    held, mine, champion = gate.family_versus_family(recsys.Popularity(), pick, mixed)
    assert held is mixed.families_by and mine is pick.random_per_user
    assert len(champion.per_user_ndcg) == len(mine) and mine.mean() >= champion.per_user_ndcg.mean()
    reranker = _judged(fit.LIGHTGBM, 0.3)  # (not picked by the random protocol: the temporal holdout judges)
    reranker.per_user = np.zeros(len(mixed.users))
    held, mine, champion = gate.family_versus_family(recsys.Popularity(), reranker, mixed)
    assert held is mixed and len(champion.per_user_ndcg) == len(mixed.users)


def test_a_family_champion_the_random_protocol_did_not_pick_still_competes_and_is_refreshed():
    """Where the random protocol picks the family, the champion's family competes beside the pick: a pick
    ahead of it by a hair would be refused by the gate, and the champion never refreshed (ranking.choose)."""
    from ml.core.tenants import Tenant
    from ml.models import train

    history, as_of = _returning_history(), pd.Timestamp("2026-03-05")
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    mixed = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of, True)
    pick, _ = ranking.choose(ranking.compete(mixed, [], RANKING_KIND, []))
    assert pick.family == "sar"
    kept = ranking.compete(mixed, [], RANKING_KIND, [], incumbent="item_knn")
    assert {c.family for c in kept} == {"popularity", "popularity_7d", "sar", "item_knn"}
    winner, why = ranking.choose(kept, "item_knn", margin=0.002)  # sar leads item_knn within noise there
    assert winner.family == "item_knn" and "the champion's family, refitted" in why, why
    assert "ndcg_at_10 +0.0070" in why  # paired on the random protocol's users, as the gate pairs them
    kept = ranking.compete(mixed, [], RANKING_KIND, [], incumbent="als")  # far behind: the pick replaces it
    assert ranking.choose(kept, "als", margin=0.002)[0].family == "sar"


def test_a_family_champion_that_no_longer_fits_the_catalogue_gives_way_to_the_competitions_winner(monkeypatch):
    """EASE refuses a catalogue past its limit: once a tenant's catalogue outgrows it, an EASE champion can be
    neither judged nor refreshed, and the competition's winner (which EASE could not enter) replaces it, rather
    than the gate failing every training of the tenant."""
    from types import SimpleNamespace

    from ml.core.settings import TrainSettings
    from ml.models import gate

    cutoff, n = pd.Timestamp("2026-02-26"), recsys.EASE().max_items + 1
    before = [(f"u{j % 60}", f"i{j}", cutoff - pd.Timedelta(days=1 + j % 20)) for j in range(n)]
    after = [(f"u{u}", f"i{u + 1}", cutoff + pd.Timedelta(days=1)) for u in range(60)]
    history = pd.DataFrame(before + after, columns=["user_id", "item_id", "event_date"]).assign(interactions=1)
    examples = pd.DataFrame({"cutoff_date": [cutoff], "user_id": ["u0"], "item_id": ["i0"]})
    holdout = ranking.RankingHoldout.build(history, examples, window_days=7)
    kept = ranking.compete(holdout, [], RANKING_KIND, [])
    assert "ease" not in {c.family for c in kept} and len(holdout.history.items) == n
    winner, _ = ranking.choose(kept, incumbent="ease")
    monkeypatch.setattr(gate, "load_family", lambda name, version, settings: recsys.EASE())  # the champion's recipe
    champ = SimpleNamespace(version="2", tags={"family": "ease"})
    decision = gate._versus_champion(RANKING_KIND, "recommender.shop", champ, winner, holdout, [], TrainSettings(),
                                     None)  # fmt: skip
    assert decision.promote and "champion v2 (ease) no longer fits this tenant" in decision.reason, decision.reason


def test_a_tenant_that_allows_repeats_is_judged_on_the_temporal_holdout_the_random_split_cannot_credit_them():
    """The random split holds out items a user has not had: under ``allow`` (a re-purchase shop) the repeats
    its users take next score nothing there, so ``auto`` stays temporal; ``random`` is still the tenant's choice."""
    from ml.core.tenants import Tenant
    from ml.models import train

    history, as_of = _returning_history(), pd.Timestamp("2026-03-05")
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    split = ranking.RankingHoldout.random_split(history, as_of, exclude_seen=False)
    rows, cols = (
        split.history.rows(split.relevant["user_id"].to_numpy()),
        split.history.columns(split.relevant["item_id"].to_numpy()),
    )
    known = (rows >= 0) & (cols >= 0)
    assert not np.asarray(split.history.seen[rows[known], cols[known]]).any()  # no held-out pair is a repeat
    for rerankers in (False, True):
        allow = train._ranking_holdout(Tenant("grocer", "eu", seen_items="allow"), history, examples, 7, None, as_of,
                                       rerankers)  # fmt: skip
        assert allow.protocol == ranking.TEMPORAL and allow.families_by is None and len(allow.users) < 100
        exclude = train._ranking_holdout(Tenant("films", "eu"), history, examples, 7, None, as_of, rerankers)
        assert ranking.RANDOM in (exclude.protocol, exclude.families_by and exclude.families_by.protocol)
    chose = train._ranking_holdout(Tenant("grocer", "eu", seen_items="allow", holdout_protocol="random"), history,
                                   examples, 7, None, as_of)  # fmt: skip
    assert chose.protocol == ranking.RANDOM and chose.chosen_by_tenant


def test_a_tenants_chosen_holdout_protocol_overrides_the_rule_and_a_re_ranker_champion_gives_way():
    """``holdout_protocol``: random judges even where the temporal holdout speaks for the users (and
    its winner replaces a re-ranker champion, which it cannot judge); temporal never hands over."""
    from types import SimpleNamespace

    from ml.core.settings import TrainSettings
    from ml.core.tenants import Tenant
    from ml.models import gate, ranking, train

    as_of = pd.Timestamp("2026-03-05")
    examples = pd.DataFrame({"cutoff_date": [as_of - pd.Timedelta(days=7)], "user_id": ["u0"], "item_id": ["a0"]})
    returning = _returning_history()  # auto: the temporal holdout judges, re-rankers and all
    auto = train._ranking_holdout(Tenant("films", "eu"), returning, examples, 7, None, as_of, True)
    assert auto.protocol == ranking.TEMPORAL and not auto.chosen_by_tenant
    logged: dict = {}
    chose = train._ranking_holdout(Tenant("films", "eu", holdout_protocol="random"), returning, examples, 7, None,
                                   as_of, True, logged)  # fmt: skip
    assert chose.protocol == ranking.RANDOM and chose.chosen_by_tenant and chose.temporal is not None
    assert logged["holdout_protocol"] == logged["families_protocol"] == "random"
    bursty = _bursty_history()  # auto: the random protocol decides
    assert train._ranking_holdout(Tenant("films", "eu"), bursty, examples, 7, None, as_of, True).protocol == "random"
    kept = train._ranking_holdout(Tenant("films", "eu", holdout_protocol="temporal"), bursty, examples, 7, None, as_of)
    assert kept.protocol == ranking.TEMPORAL and kept.families_by is None and kept.temporal is None
    # the random protocol's winner against a re-ranker champion: replaced, nothing loaded or judged
    winner, _ = ranking.choose(ranking.compete(chose, [], RANKING_KIND, []))
    champ = SimpleNamespace(version="3", tags={})  # untagged: a LightGBM re-ranker
    decision = gate._versus_champion(RANKING_KIND, "recommender.films", champ, winner, chose, [],
                                     TrainSettings(), None)  # fmt: skip
    assert decision.promote and "the tenant chose" in decision.reason and "v3 (a re-ranker" in decision.reason
    chose.temporal = None  # nothing to meet on (a tenant too young for a temporal holdout): replaced all the same
    decision = gate._versus_champion(RANKING_KIND, "recommender.films", champ, winner, chose, [],
                                     TrainSettings(), None)  # fmt: skip
    assert decision.promote and "the tenant chose" in decision.reason


def test_history_candidates_are_each_users_top_items_scored_by_every_family_before_the_cutoff():
    from ml.models.recsys import candidates

    day = pd.Timestamp("2026-01-01")
    history = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "b", "c", "c", "a"],
            "item_id": ["x", "y", "x", "y", "z", "y", "w", "z"],
            "event_date": [day] * 7 + [day + pd.Timedelta(days=9)],  # a's z comes after the cutoff
            "interactions": 1,
        }
    )
    cutoff = (day + pd.Timedelta(days=5)).date()
    flags = dict.fromkeys(candidates.SOURCE_FLAGS, False)
    sources = pd.DataFrame([{"tenant_id": "t", "cutoff_date": cutoff, "user_id": u, "item_id": "x", **flags,
                             "covisit_sessions_long": 0} for u in ("a", "new")])  # fmt: skip
    catalogue = pd.DataFrame({"item_id": ["x", "y", "z"], "published_at": [day] * 3})  # w was never published
    out = candidates.score_candidates(sources, history, per_user=5, catalogue=catalogue)
    a = out[out.user_id == "a"].set_index("item_id")
    # a consumed x and y: the new candidate is z (w is not in the catalogue); x, its source's, stays
    assert set(a.index) == {"x", "z"} and a.loc["z", "is_history_candidate"] and not a.loc["x", "is_history_candidate"]
    assert np.isnan(a.loc["x", "sar_rank"]) and a.loc["z", "sar_rank"] == 1  # consumed: scored, never ranked
    data = recsys.Interactions.from_events(ranking_events(history), pd.Timestamp(cutoff))
    sar = recsys.fitted(candidates.SCORERS["sar"](), data)
    expected = sar.score(sar.history(data)[data.rows(np.array(["a"]))])[0]
    assert a.loc["z", "sar_score"] == pytest.approx(expected[data.columns(np.array(["z"]))[0]])
    assert a.loc["z", "user_history_items"] == 2 and a.loc["z", "user_days_since_last_interaction"] == 5
    # a user without history keeps their source candidates, without scores
    new = out[out.user_id == "new"]
    assert list(new.item_id) == ["x"] and new.sar_score.isna().all() and (new.user_history_items == 0).all()
    # a cutoff where none of the sources' users has history before it (the tenant has): the same
    alone = candidates.score_candidates(sources[sources.user_id == "new"], history, per_user=5, catalogue=catalogue)
    assert list(alone.item_id) == ["x"] and alone.sar_score.isna().all() and (alone.user_history_items == 0).all()
    # a cutoff before the tenant's first interaction: the sources' rows as they came, unscored
    early = candidates.score_candidates(sources.assign(cutoff_date=day.date()), history, per_user=5)
    assert list(early.user_id) == ["a", "new"] and list(early.columns) == candidates.OUTPUT_COLUMNS
    assert early.sar_score.isna().all() and early.ease_rank.isna().all() and not early.is_history_candidate.any()
    # repeats allowed: consumed items are ranked (and may be candidates)
    allowed = candidates.score_candidates(sources, history, per_user=5, exclude_seen=False, catalogue=catalogue)
    assert allowed[(allowed.user_id == "a") & (allowed.item_id == "x")].sar_rank.notna().all()


@pytest.mark.parametrize(
    "model",
    [recsys.ItemKNN(neighbours=2), recsys.SAR(), recsys.EASE(l2=1.0), recsys.ALS(factors=2, l2=0.1, iterations=5)],
    ids=lambda m: m.name,
)
def test_a_familys_explanation_is_the_history_items_whose_terms_add_up_to_its_score(model):
    from ml.models.recsys.explain import explain

    data = _data()
    recsys.fitted(model, data)
    row = model.history(data)[data.rows(np.array(["a"]))]
    scores = model.score(row)[0]
    cols = np.arange(len(data.items))
    terms = explain(model, row, cols, top=len(data.items))
    assert [sum(t[2] for t in item) for item in terms] == pytest.approx(scores.tolist(), rel=1e-4, abs=1e-6)
    assert {t[0] for item in terms for t in item} == {"history:x", "history:y"}  # a's history
    assert all(len(item) <= 1 for item in explain(model, row, cols, top=1))


def test_recent_popularity_competes_over_a_week_and_over_the_tenants_short_window():
    """A daily tenant's short window is the week; a monthly shop's (35 days) competes beside it."""
    names = [m.name for m in ranking.families()]
    assert [n for n in names if n.startswith("popularity")] == ["popularity", "popularity_7d"]
    names = [m.name for m in ranking.families(recent_days=35)]
    assert [n for n in names if n.startswith("popularity")] == ["popularity", "popularity_7d", "popularity_35d"]
