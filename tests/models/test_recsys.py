"""The classic recommender families on toy histories, against values computed by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.core import sealed_files
from ml.core.settings import get_settings
from ml.core.tenant_parquet import TenantKeyError
from ml.core.tenants import Tenant, TenantStore
from ml.models import fit, ranking, recsys

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


def test_eases_cholesky_inverse_in_place_gives_the_weights_of_the_textbook_inverse():
    """``ease_weights`` (LAPACK's Cholesky inverse, the upper triangle mirrored in blocks) equals ``np.linalg.inv``'s
    ``B``, on a catalogue of more items than one mirrored block; it refuses a weight that is not a positive number,
    and an empty catalogue has an empty ``B``."""
    from ml.models.recsys.linalg import BLOCK, ease_weights

    rng = np.random.default_rng(3)
    n = BLOCK + 300
    x = sp.random(2 * n, n, density=0.02, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    gram = (x.T @ x).toarray().astype(np.float64) + 200.0 * np.eye(n)
    p = np.linalg.inv(gram)
    expected = (-p / np.diag(p)).astype(np.float32)
    np.fill_diagonal(expected, 0.0)
    b = ease_weights(x, 200.0)
    assert b.dtype == np.float32 and b.flags["C_CONTIGUOUS"] and not np.diag(b).any()
    assert np.allclose(b, expected, rtol=1e-5, atol=1e-7)
    assert np.allclose(ease_weights(x, 200.0, threads=2), expected, rtol=1e-5, atol=1e-7)  # the training's threads
    model = recsys.unfitted(recsys.EASE(l2=200.0, threads=2))  # (a refit keeps the competition's threads)
    assert (model.l2, model.threads) == (200.0, 2)
    for l2 in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="must be a positive number"):
            ease_weights(x, l2)
    assert ease_weights(sp.csr_matrix((4, 0), dtype=np.float32), 500.0).shape == (0, 0)  # no items: no weights
    assert not ease_weights(sp.csr_matrix((4, 3), dtype=np.float32), 500.0).any()  # no interactions: none either


def test_recommend_excludes_seen_items_or_allows_repeats_and_falls_back_to_popularity():
    data = _data()
    model = recsys.SAR("jaccard", half_life_days=None).fit(data)
    users = np.array(["a", "new"])
    excluded = _lists(recsys.recommend(model, data, users, k=3))
    assert excluded == {"a": ["z"], "new": ["y", "x", "z"]}  # a saw x and y; new: popularity, ties by id
    allowed = _lists(recsys.recommend(model, data, users, k=2, exclude_seen=False))
    assert allowed == {"a": ["z", "x"], "new": ["y", "x"]}  # x and y tie at 2/3: lower id first


def test_an_item_rated_below_the_threshold_is_consumed_never_learnt_from_nor_recommended_back():
    """A history row of 0 interactions (the user only rated the item below the tenant's min_rating) is consumed:
    every family learns without it, and no list, holdout or history candidate gives the item back to that user
    under the exclude policy (allow: it may come back). Each assertion failed when low ratings were left out of
    the history (the item came back) or counted as positives (the families learnt them)."""
    from ml.models.recsys import candidates, tuning

    # TOY, and a rated z and w, c rated x, d rated y, each below the threshold (d has nothing else; nobody liked w)
    low = _events([("a", "z", 4), ("a", "w", 3), ("c", "x", 4), ("d", "y", 2)]).assign(interactions=0.0)
    data = recsys.Interactions.from_events(pd.concat([TOY.assign(interactions=1.0), low]), AS_OF)
    plain = _data()
    assert list(data.users) == ["a", "b", "c", "d"] and list(data.items) == ["x", "y", "z"], "w: no family's item"
    assert (data.seen[:3].toarray() == plain.seen.toarray()).all() and data.seen[3].nnz == 0
    assert data.consumed.toarray().tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 1, 0]]
    assert data.users_within(7).toarray()[3].sum() == 0, "a low rating is no recent interaction"
    for make in (recsys.Popularity, lambda: recsys.SAR("jaccard", half_life_days=None), lambda: recsys.EASE(l2=1.0)):
        with_low, without = make().fit(data), make().fit(plain)
        scores = with_low.score(with_low.history(data)[:3])
        assert np.allclose(scores, without.score(without.history(plain)), atol=1e-6), with_low.name
    model = recsys.SAR("jaccard", half_life_days=None).fit(data)
    users = np.array(["a", "c", "d"])
    assert _lists(recsys.recommend(model, data, users, k=3)) == {"d": ["x", "z"]}, "a and c consumed everything"
    allowed = _lists(recsys.recommend(model, data, users, k=3, exclude_seen=False))
    assert "x" in allowed["c"] and allowed["d"] == ["y", "x", "z"], "d: the popularity order, as a new user"
    # the random protocol holds out positives only; what was only consumed stays consumed in its training
    history = pd.concat([TOY.assign(interactions=1), low.assign(interactions=0)], ignore_index=True)
    history["event_date"] = history.pop("event_at").dt.tz_localize(None)  # interaction_history's rows
    rand = ranking.RankingHoldout.random_split(history, AS_OF)
    liked = ranking.RankingHoldout.random_split(history[history["interactions"] > 0], AS_OF)
    assert rand.relevant.equals(liked.relevant), "the same split of the positives"
    assert rand.judged_share() == liked.judged_share(), "d, who liked nothing, is no user with history to judge"
    assert not rand.relevant.merge(low[["user_id", "item_id"]]).size
    assert rand.history.consumed[rand.history.rows(np.array(["d"]))[0]].nnz == 1
    assert "y" not in _lists(rand.family_lists(recsys.Popularity().fit(rand.history))).get("d", [])
    # a re-ranker's SQL candidates may hold w, which nobody liked (outside the families' catalogue): not for a
    window = pd.DataFrame(
        {"user_id": ["a"], "item_id": ["v"], "event_date": [AS_OF.tz_localize(None)], "interactions": 1}
    )
    examples = pd.DataFrame(
        {"cutoff_date": [AS_OF.tz_localize(None)] * 2, "user_id": ["a", "a"], "item_id": ["w", "v"]}
    )
    temporal = ranking.RankingHoldout.build(pd.concat([history, window], ignore_index=True), examples, window_days=7)
    assert _lists(temporal.reranker_lists(np.array([9.0, 1.0]))) == {"a": ["v"]}
    # history candidates: a's low-rated z is no candidate of a's, and ranked nowhere for a
    flags = dict.fromkeys(candidates.SOURCE_FLAGS, False)
    sources = pd.DataFrame([{"tenant_id": "t", "cutoff_date": AS_OF.date(), "user_id": u, "item_id": "z", **flags,
                             "covisit_sessions_long": 0} for u in ("a", "d")])  # fmt: skip
    out = candidates.score_candidates(sources, history, per_user=5).set_index(["user_id", "item_id"])
    assert np.isnan(out.loc[("a", "z"), "sar_rank"]) and not out.loc[("a", "z"), "is_history_candidate"]
    assert np.isnan(out.loc[("d", "z"), "sar_score"]), "d has no positive: no family's opinion"
    assert set(tuning.inner_scores(data, grid=(1.0,))) == {1.0}


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


def test_als_solves_every_user_from_one_gram_matrix_kept_with_its_item_factors(tmp_path):
    """``Y^T Y + l2 I`` is the same for every user: computed once per model (per scored user it cost ~20 ms of a
    one-user score at 40,000 items, and refused such a tenant's ALS champion on latency), and again for new item
    factors: a refit, a version loaded from its arrays."""
    model = recsys.ALS(factors=2, l2=0.1, alpha=3.0, iterations=5).fit(_data())
    y = model.item_factors.astype(np.float64)
    gram = model.gram()
    assert np.allclose(gram, y.T @ y + 0.1 * np.eye(2))
    batch = model.score(_data().counts)
    assert model.gram() is gram  # not computed again per call
    assert all(np.array_equal(model.score(_data().counts[r]), batch[r : r + 1]) for r in range(3))  # alone = in a batch
    other = recsys.Interactions.from_events(
        _events([("a", "x", 1), ("a", "z", 2), ("b", "z", 3), ("c", "y", 1)]), AS_OF
    )
    refit = model.fit(other)
    assert refit.gram() is not gram and np.allclose(refit.gram(), _gram(refit))
    recsys.save(refit, tmp_path / "v")
    loaded = recsys.load(tmp_path / "v")
    assert np.allclose(loaded.gram(), _gram(refit))
    assert np.allclose(loaded.score(other.counts), refit.score(other.counts), atol=1e-6)
    # factors or a weight set by hand: solved again with them, not with the ones held before
    loaded.l2 = 5.0
    assert np.allclose(loaded.gram(), _gram(loaded)) and not np.allclose(loaded.gram(), _gram(refit))
    loaded.item_factors = loaded.item_factors * 2
    assert np.allclose(loaded.gram(), _gram(loaded))
    fresh = recsys.ALS(factors=2, l2=5.0, alpha=loaded.alpha)  # the same factors and weight, never scored before
    fresh.items, fresh.item_factors = loaded.items, loaded.item_factors
    assert np.array_equal(loaded.score(other.counts), fresh.score(other.counts))


def _gram(model: recsys.ALS) -> np.ndarray:
    y = model.item_factors.astype(np.float64)
    return y.T @ y + model.l2 * np.eye(y.shape[1])


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


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_a_blocks_sparse_and_dense_scores_rank_and_choose_as_a_stable_descending_sort_of_the_servable_scores(
    exclude_seen,
):
    """The history candidates' block scores (:mod:`ml.models.recsys.block_scores`): an item-item family's sparse
    scores (positive entries; ties, stored zeros, consumed items with positive scores) and the dense ones rank every
    pair and choose every user's top k as a sort by hand does; EASE on its fitted columns as EASE on every column."""
    from ml.models.recsys.block_scores import DenseScores, SparseScores, block_scores

    rng = np.random.default_rng(11)
    for _ in range(60):
        users, n = int(rng.integers(1, 9)), int(rng.integers(2, 40))
        history = sp.csr_matrix((rng.random((users, n)) < 0.15) * rng.choice([1.0, 0.5], (users, n)), dtype=np.float32)
        sim = sp.random(n, n, density=0.3, random_state=rng, dtype=np.float32)  # 0-valued entries stored: 0 products
        sim.data = rng.integers(0, 3, len(sim.data)).astype(np.float32)  # few values: ties
        consumed = sp.csr_matrix(((history.toarray() > 0) | (rng.random((users, n)) < 0.1)).astype(np.float32))
        allowed, k = rng.random(n) < 0.8, int(rng.integers(1, n + 2))
        model = recsys.SAR()
        model.similarity, model.items = sim.tocsr(), np.arange(n).astype(str)
        s = (history @ sim).toarray().astype(np.float32)
        servable = np.where(consumed.toarray() > 0, -np.inf, s) if exclude_seen else s
        rows, cols = np.divmod(np.arange(users * n), n)
        expected_rank = [
            np.nan if not np.isfinite(servable[r, c]) else 1 + sum((-servable[r, j], j) < (-servable[r, c], c)
                                                                   for j in range(n))
            for r, c in zip(rows, cols, strict=True)
        ]  # fmt: skip
        best = [sorted(range(n), key=lambda j, r=r: (-servable[r, j], j))[:k] for r in range(users)]
        expected_top = sorted((r, j) for r in range(users) for j in best[r] if servable[r, j] > 0 and allowed[j])
        sparse = block_scores(model, history, consumed.copy(), exclude_seen)
        assert isinstance(sparse, SparseScores)
        for form in (sparse, DenseScores(s, None, consumed, exclude_seen)):
            scores, ranks = form.at(rows, cols)
            assert np.array_equal(scores, s[rows, cols]) and np.array_equal(ranks, expected_rank, equal_nan=True)
            assert list(zip(*form.top(k, allowed), strict=True)) == expected_top
    model.similarity = model.similarity.copy()
    model.similarity.data[:] = -1.0  # a family with negative scores is kept dense
    stored_zero = sp.csr_matrix((np.array([0.0, 2.0], dtype=np.float32), ([0, 0], [0, 1])), shape=(1, 3))
    at_zero = SparseScores(stored_zero, sp.csr_matrix((1, 3), dtype=np.float32), exclude_seen)
    assert [list(x) for x in at_zero.top(2, np.ones(3, dtype=bool))] == [[0], [1]]  # no positive score: not chosen
    everyone = sp.csr_matrix(np.ones((users, n), dtype=np.float32))
    assert isinstance(block_scores(model, everyone, consumed, exclude_seen), DenseScores)
    data = _data()
    ease = recsys.EASE(l2=0.5, columns=2).fit(data)
    full = DenseScores(ease.score(data.seen), None, data.consumed, exclude_seen)
    fitted_only = block_scores(ease, data.seen, data.consumed, exclude_seen)
    rows, cols = np.divmod(np.arange(len(data.users) * len(data.items)), len(data.items))
    assert np.array_equal(np.array(fitted_only.at(rows, cols)), np.array(full.at(rows, cols)), equal_nan=True)
    everything = np.ones(len(data.items), dtype=bool)
    assert [list(x) for x in fitted_only.top(1, everything)] == [list(x) for x in full.top(1, everything)]


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


def ranking_events(history: pd.DataFrame) -> pd.DataFrame:
    from ml.models import ranking

    return ranking.history_events(history)


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


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_sparse_users_history_candidates_are_each_familys_top_positive_items_in_blocks_of_any_size(
    exclude_seen, monkeypatch
):
    """Most users of a clickstream touch an item or two: a few positive scores in each row, ties at 0 and at -inf
    everywhere else (top_mask's path without a partition). Every family's chosen items are its top ``per_user``
    positive ones by hand, and blocks of one or two users give the same rows as one block."""
    from ml.models.recsys import candidates, interactions

    rng = np.random.default_rng(3)
    day = pd.Timestamp("2026-01-01")
    users, items = [f"u{n:03d}" for n in range(120)], [f"i{n:03d}" for n in range(90)]
    taken = [(u, items[int(j)]) for u in users for j in rng.choice(90, int(rng.integers(1, 4)), replace=False)]
    history = pd.DataFrame(taken, columns=["user_id", "item_id"]).assign(
        event_date=[day + pd.Timedelta(days=int(d)) for d in rng.integers(0, 20, len(taken))], interactions=1
    )
    cutoff = (day + pd.Timedelta(days=25)).date()
    flags = dict.fromkeys(candidates.SOURCE_FLAGS, False)
    sources = pd.DataFrame([{"tenant_id": "t", "cutoff_date": cutoff, "user_id": u, "item_id": items[0], **flags,
                             "covisit_sessions_long": 0} for u in users])  # fmt: skip
    per_user = 4
    out = candidates.score_candidates(sources, history, per_user=per_user, exclude_seen=exclude_seen)
    data = recsys.Interactions.from_events(ranking_events(history), pd.Timestamp(cutoff))
    seen = data.consumed.toarray() > 0
    expected = set()
    for make in candidates.SCORERS.values():
        model = recsys.fitted(make(), data)
        s = model.score(model.history(data))
        if exclude_seen:
            s = np.where(seen, -np.inf, s)
        for row, user in enumerate(data.users):
            best = sorted(range(len(data.items)), key=lambda j, row=row: (-s[row, j], j))[:per_user]
            expected |= {(user, data.items[j]) for j in best if np.isfinite(s[row, j]) and s[row, j] > 0}
    chosen = out[out.is_history_candidate]
    assert set(zip(chosen.user_id, chosen.item_id, strict=True)) == expected
    assert len(expected) > len(users)  # (users with few positive scores and some with more than per_user)
    sizes = {0: 2048, 10: 2048, 16_384: 2048, 16_385: 2047, 235_061: 142, 10**9: 1}  # users a block, by items
    assert {n: interactions.block_rows(n) for n in sizes} == sizes
    with pytest.raises(ValueError, match="NaN"):
        interactions.top_mask(np.array([[1.0, np.nan, 0.0]], dtype=np.float32), 1)
    monkeypatch.setattr(interactions, "BLOCK_CELLS", 2 * len(data.items) - 1)  # one user a block
    one_a_block = candidates.score_candidates(sources, history, per_user=per_user, exclude_seen=exclude_seen)
    pd.testing.assert_frame_equal(one_a_block, out)
    sar = recsys.fitted(candidates.SCORERS["sar"](), data)
    lists = recsys.recommend(sar, data, data.users, k=5, exclude_seen=exclude_seen)
    monkeypatch.setattr(interactions, "BLOCK_CELLS", 2 * len(data.items))  # two users a block
    pd.testing.assert_frame_equal(recsys.recommend(sar, data, data.users, k=5, exclude_seen=exclude_seen), lists)


def test_ease_on_the_columns_with_most_users_scores_them_as_ease_on_them_alone_and_no_other(tmp_path, monkeypatch):
    """The history candidates' EASE on a catalogue above its ``columns``: fitted on the items with most users."""
    from ml.models.recsys import candidates
    from ml.models.recsys.explain import explain
    from ml.models.recsys.linalg import ease_weights

    data = _data()  # users per item: x 2, y 3, z 2 (a tie: the lower index, x, first)
    pruned = recsys.EASE(l2=0.5, columns=2).fit(data)
    assert pruned.kept is not None and list(pruned.kept) == [0, 1] and list(pruned.items) == ["x", "y", "z"]
    scores = pruned.score(data.seen)
    alone = data.seen[:, [0, 1]] @ ease_weights(data.seen[:, [0, 1]], 0.5)
    assert np.allclose(scores[:, :2], alone) and np.isneginf(scores[:, 2]).all()
    assert recsys.EASE(l2=0.5, columns=3).fit(data).kept is None  # a catalogue within it: every item
    with pytest.raises(ValueError, match="not saved"):
        recsys.save(pruned, tmp_path / "model")
    with pytest.raises(ValueError, match="recommends none"):  # nor served ...
        recsys.recommend(pruned, data, np.array(["a"]), 2)
    with pytest.raises(TypeError, match="no explanation"):  # ... nor explained; a copy keeps its columns
        explain(pruned, data.seen[:1], np.array([0]))
    assert recsys.unfitted(pruned).fit(data).kept is not None
    # in the history candidates an item outside the fitted ones has no EASE score or rank (SAR's stay)
    monkeypatch.setattr(candidates, "EASE_COLUMNS", 1)
    day = pd.Timestamp("2026-01-28")
    history = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "d"],
            "item_id": ["x", "y", "y", "z", "y", "z"],
            "event_date": [day] * 6,
            "interactions": 1,
        }
    )  # fmt: skip  (y has most users: kept)
    flags = dict.fromkeys(candidates.SOURCE_FLAGS, False)
    sources = pd.DataFrame([{"tenant_id": "t", "cutoff_date": (day + pd.Timedelta(days=3)).date(), "user_id": u,
                             "item_id": i, **flags, "covisit_sessions_long": 0} for u, i in (("a", "z"), ("d", "y"))])  # fmt: skip
    out = candidates.score_candidates(sources, history, per_user=5).set_index(["user_id", "item_id"])
    assert np.isnan(out.loc[("a", "z"), "ease_score"]) and np.isnan(out.loc[("a", "z"), "ease_rank"])
    assert out.loc[("a", "z"), "sar_score"] > 0  # SAR's opinion stays
    # d's history (z) is outside the fitted items: EASE has no opinion on any item for d, not a score of 0 ranked 1st
    assert out.loc["d"].ease_score.isna().all() and out.loc["d"].ease_rank.isna().all(), out.loc["d"]


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


def test_eases_l2_weight_is_the_one_that_ranks_an_inner_split_of_the_tenants_own_history_best():
    """``tuned_ease`` keeps the weight of the grid with the best inner nDCG@10 (ties to the larger), the default where
    no user has an item to hold out; the competition fits EASE with it, and the refit keeps it."""
    from ml.models.recsys import tuning

    rng = np.random.default_rng(0)
    pairs = [
        (f"u{u}", f"c{u % 4}-{i:02d}", int(d)) for u in range(80) for i, d in zip(*rng.choice(15, (2, 6)), strict=True)
    ]
    data = recsys.Interactions.from_events(_events(pairs), AS_OF)
    scores = tuning.inner_scores(data)
    assert set(scores) == set(tuning.L2_GRID) and all(0 < v <= 1 for v in scores.values())
    chosen = tuning.tuned_ease(data).l2
    assert scores[chosen] == max(scores.values()) and chosen == max(w for w in scores if scores[w] == scores[chosen])
    single = recsys.Interactions.from_events(_events([(f"u{u}", f"i{u}", 1) for u in range(5)]), AS_OF)
    assert tuning.inner_scores(single) == {} and tuning.tuned_ease(single).l2 == 500.0
    history = pd.DataFrame(
        {
            "user_id": [u for u, _, _ in pairs],
            "item_id": [i for _, i, _ in pairs],
            "event_date": AS_OF.tz_localize(None),
        }
    ).assign(interactions=1)
    holdout = ranking.RankingHoldout.random_split(history, AS_OF + pd.Timedelta(days=1))
    [ease] = [f.model for f in ranking.judge_families(holdout) if f.model.name == "ease"]
    assert ease.l2 == tuning.tuned_ease(holdout.history).l2
    assert ranking.refit(ease, history, AS_OF + pd.Timedelta(days=1)).l2 == ease.l2
    # the temporal holdout's fits judged again by the random protocol keep their weight: one weight judged and served
    [again] = [
        f.model for f in ranking.judge_families(holdout, like={"ease": recsys.EASE(l2=50.0)}) if f.model.name == "ease"
    ]
    assert again.l2 == 50.0


def test_eases_weight_chosen_for_the_last_version_is_reused_while_the_history_is_much_the_same(monkeypatch):
    """``Tuning.stale``: a weight chosen less than a week before, on the same holdout protocol, with users, items and
    pairs within 10%, is reused (no inner fits); another grid or protocol, a history ending before it or a week or
    more after it, or users, items or pairs changed by more are chosen again. A tag this code would not write is
    not read. The competition records the Tuning once EASE fitted (not above its catalogue limit); the newest
    version's tag is read."""
    from types import SimpleNamespace

    from ml.models.recsys import tuning

    rng = np.random.default_rng(0)
    pairs = [
        (f"u{u}", f"c{u % 4}-{i:02d}", int(d)) for u in range(80) for i, d in zip(*rng.choice(15, (2, 6)), strict=True)
    ]
    data = recsys.Interactions.from_events(_events(pairs), AS_OF)
    chosen = tuning.tuned_ease(data, protocol="temporal")
    users, items, nnz = len(data.users), len(data.items), data.seen.nnz
    assert chosen.tuning == tuning.Tuning(chosen.l2, "2026-01-31", users, items, nnz, "temporal")
    assert tuning.Tuning.from_tag(chosen.tuning.tag()) == chosen.tuning
    other = next(w for w in tuning.L2_GRID if w != chosen.l2)  # a weight the inner split would not choose
    planted = replace(chosen.tuning, l2=other)
    day = pd.Timedelta(days=1)
    for reused in (
        planted,
        replace(planted, as_of=str((AS_OF - 6 * day).date())),  # six days before
        replace(planted, users=round(users / 1.1), items=round(items * 1.1), pairs=round(nnz * 1.09)),  # within 10%
    ):
        got = tuning.tuned_ease(data, previous=reused, protocol="temporal")
        assert (got.l2, got.tuning) == (other, reused), reused
    for stale in (
        replace(planted, as_of=str((AS_OF - 7 * day).date())),  # a week: chosen again weekly
        replace(planted, as_of=str((AS_OF + day).date())),  # chosen on a history ending after this one
        replace(planted, users=users - 9),  # 80 users, 71 before: 12.7% more now
        replace(planted, items=items * 2),
        replace(planted, pairs=round(nnz / 1.5)),  # a denser history of the same users and items
        replace(planted, protocol="random"),  # chosen on another holdout's history
        replace(planted, grid=(1.0, 2.0, other)),
    ):
        assert stale.stale(data, "temporal") is not None
        got = tuning.tuned_ease(data, previous=stale, protocol="temporal")
        assert (got.l2, got.tuning) == (chosen.l2, chosen.tuning), stale
    good = json.loads(planted.tag())
    for broken in (
        None,
        "",
        "not json",
        json.dumps({k: v for k, v in good.items() if k != "pairs"}),  # a tag written before pairs were kept
        json.dumps(good | {"l2": "x"}),
        json.dumps(good | {"l2": 3.0}),  # off the grid
        json.dumps(good | {"l2": float("nan")}),
        json.dumps(good | {"users": float("inf")}),  # (Infinity: int() raises OverflowError)
        json.dumps(good | {"items": -1}),
        json.dumps(good | {"as_of": "NaT"}),
        json.dumps(good | {"as_of": "20260131"}),  # (a date, but not as this code writes one)
        json.dumps(good | {"l2": "500"}),
        json.dumps(good | {"users": True}),
        json.dumps(good | {"users": 1.9}),
        json.dumps(good | {"protocol": None}),
        json.dumps(good | {"grid": [50.0, "x"]}),
        json.dumps(good | {"extra": 1}),
        json.dumps([good]),
    ):
        assert tuning.Tuning.from_tag(broken) is None, broken
    history = pd.DataFrame(
        {
            "user_id": [u for u, _, _ in pairs],
            "item_id": [i for _, i, _ in pairs],
            "event_date": AS_OF.tz_localize(None),
        }
    ).assign(interactions=1)
    holdout = ranking.RankingHoldout.random_split(history, AS_OF + day)
    planted = replace(tuning.tuned_ease(holdout.history, protocol=holdout.protocol).tuning, l2=other)
    [ease] = [f.model for f in ranking.judge_families(holdout, tuning=planted) if f.model.name == "ease"]
    assert ease.l2 == other and holdout.tuning == planted
    assert ranking.tuning_params(holdout) == {"ease_tuning": planted.tag()}
    with pytest.raises(recsys.CatalogueTooLarge):  # above EASE's limit: no weight to reuse or choose
        tuning.tuned_ease(holdout.history, max_items=len(holdout.history.items) - 1, previous=planted)
    holdout.tuning = None
    small = recsys.EASE(max_items=len(holdout.history.items) - 1)  # the competition's EASE, below this catalogue
    monkeypatch.setattr(ranking, "families", lambda threads=1, recent_days=7: [small])
    assert ranking.judge_families(holdout, tuning=planted) == []  # left out, with a log line
    assert holdout.tuning is None and ranking.tuning_params(holdout) == {}
    versions = [
        SimpleNamespace(version="3", tags={}),  # a newer version without EASE (a global model served)
        SimpleNamespace(version="2", tags={"ease_tuning": planted.tag()}),
        SimpleNamespace(version="10", tags={"ease_tuning": "{}"}),  # newest (10 > 3 as numbers), unreadable
        SimpleNamespace(version="1", tags={"ease_tuning": chosen.tuning.tag()}),
    ]
    assert tuning.previous_tuning([None, *versions]) == planted and tuning.previous_tuning([None]) is None
    erased = SimpleNamespace(version="4", tags={"reason": "erasure"})  # trained for an erasure, no weight kept
    assert tuning.previous_tuning([erased, *versions]) is None  # the weights before it saw the erased data
    erased.tags["ease_tuning"] = chosen.tuning.tag()  # chosen again for it: that one is reused
    assert tuning.previous_tuning([erased, *versions]) == chosen.tuning


def test_eases_fit_runs_lapack_on_the_threads_it_is_given(monkeypatch):
    """``EASE(threads=n)`` (the training's ``TENANTFLOW_TRAIN_THREADS``) runs its LAPACK calls on n BLAS threads, one
    by default; :func:`recsys.unfitted` keeps them (a refit) or sets them (the gate's refit of a loaded champion)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from ml.models.recsys import linalg

    seen, real = [], linalg._weights

    def watched(gram, l2):
        seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return real(gram, l2)

    monkeypatch.setattr(linalg, "_weights", watched)
    with threadpool_limits(2, "blas"):
        two = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")  # (1 on a 1-core machine)
    data = recsys.Interactions.from_events(TOY, AS_OF)
    recsys.EASE(l2=10.0).fit(data)
    recsys.EASE(l2=10.0, threads=2).fit(data)
    recsys.unfitted(recsys.EASE(l2=10.0, threads=2)).fit(data)
    recsys.unfitted(recsys.EASE(l2=10.0), threads=2).fit(data)
    assert seen == [1, two, two, two]
