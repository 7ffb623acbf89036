"""The evaluation module: the field's definitions, held to hand-computed values and to trec_eval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import pytrec_eval

from ml.models.evaluate import (
    bootstrap_interval,
    evaluate_lists,
    paired_bootstrap,
    per_query_metrics,
    resampled_interval,
    stratified_random_split,
    temporal_split,
)


def _lists(rows: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, item, r) for u, items in rows.items() for r, item in enumerate(items, start=1)],
        columns=["user_id", "item_id", "rank"],
    )


def _truth(rows: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i) for u, items in rows.items() for i in items], columns=["user_id", "item_id"])


def test_metrics_hold_their_hand_computed_values():
    # A: relevant a, b, c; list a x b.  B: relevant d; list x y d.  C: relevant e, f; no list at all.
    lists = _lists({"A": ["a", "x", "b"], "B": ["x", "y", "d"]})
    truth = _truth({"A": ["a", "b", "c", "a"], "B": ["d"], "C": ["e", "f"]})  # a repeated: counts once
    e = evaluate_lists(lists, truth, k=3, catalogue_size=10)
    ndcg_a = (1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2)  # hits at ranks 1 and 3; ideal: 3 relevant in 3
    expected = {
        "ndcg_at_3": (ndcg_a + 0.5 + 0) / 3,  # B: 1/log2(4) over the ideal 1
        "precision_at_3": (2 / 3 + 1 / 3 + 0) / 3,
        "recall_at_3": (2 / 3 + 1 + 0) / 3,
        "map_at_3": ((1 / 1 + 2 / 3) / 3 + (1 / 3) / 1 + 0) / 3,  # precision at each hit over |relevant|
        "hit_rate_at_3": 2 / 3,
        "catalogue_coverage_at_3": 5 / 10,  # a x b y d
        "users": 3.0,
    }
    assert e.metrics() == pytest.approx(expected)


def test_a_short_list_still_divides_precision_by_k_and_ideal_dcg_stops_at_k():
    m = per_query_metrics(np.array([[True, False, False, False]]), np.array([9]))
    assert m.loc[0, "precision"] == 0.25
    assert m.loc[0, "ndcg"] == pytest.approx(1 / sum(1 / math.log2(i + 1) for i in range(1, 5)))
    with pytest.raises(ValueError, match="more hits than relevant"):
        per_query_metrics(np.array([[True, True]]), np.array([1]))


def test_metrics_agree_with_trec_eval():
    """pytrec_eval (trec_eval 9.x) on 60 random users: ndcg_cut, P, recall and map_cut at 10."""
    rng = np.random.default_rng(7)
    items = [f"i{j}" for j in range(40)]
    lists, truth = {}, {}
    for u in range(60):
        lists[f"u{u}"] = list(rng.choice(items, size=int(rng.integers(3, 15)), replace=False))
        truth[f"u{u}"] = list(rng.choice(items, size=int(rng.integers(1, 12)), replace=False))
    e = evaluate_lists(_lists(lists), _truth(truth), k=10)
    qrel = {u: dict.fromkeys(rel, 1) for u, rel in truth.items()}
    run = {u: {item: float(100 - r) for r, item in enumerate(ranked)} for u, ranked in lists.items()}
    ref = pytrec_eval.RelevanceEvaluator(qrel, {"ndcg_cut.10", "P.10", "recall.10", "map_cut.10"}).evaluate(run)
    users = sorted(truth)
    ours = e.per_user.set_axis(users)
    for ours_col, theirs in [
        ("ndcg", "ndcg_cut_10"),
        ("precision", "P_10"),
        ("recall", "recall_10"),
        ("ap", "map_cut_10"),
    ]:
        assert ours[ours_col].to_numpy() == pytest.approx([ref[u][theirs] for u in users], abs=1e-4), ours_col


def test_bootstrap_intervals_cover_the_mean_and_pairing_detects_a_small_gain():
    rng = np.random.default_rng(0)
    base = rng.random(400)
    lo, hi = bootstrap_interval(base, seed=1)
    assert lo < base.mean() < hi and hi - lo < 0.08  # about 4 standard errors (0.0144 each)
    better = base + 0.01  # the same users, each a little better: unpaired intervals would overlap
    mean, lo, hi = paired_bootstrap(better, base)
    assert mean == pytest.approx(0.01) and lo > 0
    mean, lo, hi = paired_bootstrap(rng.permutation(base), base)
    assert lo < 0 < hi


def test_a_resampled_interval_of_a_pr_auc_difference_sees_a_real_gain_and_not_noise():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    y = rng.random(2_000) < 0.1
    signal = y + rng.normal(0, 1.0, 2_000)  # informative scores
    noise = rng.normal(0, 1.0, 2_000)  # scores that know nothing

    def ahead(a, b):
        return lambda idx: average_precision_score(y[idx], a[idx]) - average_precision_score(y[idx], b[idx])

    lo, hi = resampled_interval(ahead(signal, noise), len(y))
    assert 0 < lo < hi
    lo, hi = resampled_interval(ahead(noise, rng.normal(0, 1.0, 2_000)), len(y))
    assert lo < 0 < hi
    # resamples where the statistic is undefined are left out, not averaged in
    assert all(np.isnan(resampled_interval(lambda idx: float("nan"), 10)))


@pytest.mark.parametrize("name", ["churn", "engagement"])
def test_a_kinds_headline_alone_is_its_headline_among_all_metrics(name):
    """The gate bootstraps ``headline_metric``; promotion and reports read ``metrics``: they must agree."""
    from ml.models.kinds import get_kind

    kind = get_kind(name)
    rng = np.random.default_rng(5)
    y = (rng.random(500) < 0.15).astype(float) if name == "churn" else rng.poisson(2.0, 500).astype(float)
    p = np.clip(y * 0.3 + rng.random(500), 0, None) if name == "churn" else y * 0.5 + rng.random(500)
    frame = pd.DataFrame({kind.label: y})
    assert kind.headline_metric is not None
    assert kind.headline_metric(y, p) == pytest.approx(kind.metrics(frame, p, None)[kind.headline], rel=1e-12)
    for one_class in (np.zeros(20), np.ones(20)):
        assert (kind.headline_metric(one_class, p[:20]) is None) == (
            kind.headline not in kind.metrics(pd.DataFrame({kind.label: one_class}), p[:20], None)
        )


def _interactions(n_users: int = 30, per_user: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for u in range(n_users):
        for _ in range(per_user + u % 4):
            at = pd.Timestamp("2026-10-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 24 * 60)))
            rows.append((f"u{u}", f"i{rng.integers(0, 50)}", at))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_at"])


def test_the_stratified_split_keeps_each_users_ratio_and_is_seeded():
    df = _interactions()
    train, test = stratified_random_split(df, ratio=0.75, seed=42)
    assert len(train) + len(test) == len(df)
    sizes = df.groupby("user_id").size()
    assert (train.groupby("user_id").size() == np.round(0.75 * sizes)).all()
    again, _ = stratified_random_split(df, ratio=0.75, seed=42)
    other, _ = stratified_random_split(df, ratio=0.75, seed=43)
    assert train.equals(again) and not train.index.equals(other.index)


def test_the_temporal_split_tests_on_the_last_days():
    df = _interactions()
    train, test = temporal_split(df, test_days=7)
    assert len(train) + len(test) == len(df)
    cutoff = df.event_at.max().normalize() - pd.Timedelta(days=6)
    assert test.event_at.min() >= cutoff > train.event_at.max()


def test_a_re_rankers_holdout_is_scored_by_the_same_definitions():
    """ranking_metrics (a candidate frame and scores) equals evaluate_lists on the lists it ranks;
    a relevant item the candidates missed is a miss (A has two relevant, one a candidate)."""
    from ml.models.evaluate import ranking_metrics

    frame = pd.DataFrame(
        {
            "query_id": ["A", "A", "A", "B", "B"],
            "item_id": ["x", "a", "y", "d", "z"],
            "is_clicked": [0, 1, 0, 1, 0],
            "query_clicked_items": [2, 2, 2, 1, 1],
        }
    )
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.8])  # A: x a y; B: z d
    m = ranking_metrics(frame, scores, catalogue_items=8, k=2)
    e = evaluate_lists(_lists({"A": ["x", "a"], "B": ["z", "d"]}), _truth({"A": ["a", "w"], "B": ["d"]}), k=2)
    assert {k: m[k] for k in e.metrics() if k != "users"} == pytest.approx(
        {k: v for k, v in e.metrics().items() if k != "users"}
    )
    assert m["candidate_recall"] == pytest.approx((1 / 2 + 1) / 2) and m["queries"] == 2
    assert m["catalogue_coverage_at_2"] == pytest.approx(4 / 8)  # x a z d
    assert m["ndcg_at_2_low"] <= m["ndcg_at_2"] <= m["ndcg_at_2_high"]
    # equal scores: ties broken by item id, never by luck
    tied = ranking_metrics(frame, np.zeros(5), k=1)
    assert tied["hit_rate_at_1"] == 1.0  # first by id: A's "a", B's "d"


def test_a_malformed_list_is_refused_not_scored():
    truth = _truth({"A": ["a", "b"]})
    with pytest.raises(ValueError, match="names an item twice"):
        evaluate_lists(_lists({"A": ["a", "a"]}), truth, k=2)
    with pytest.raises(ValueError, match="ranks start at 1"):
        evaluate_lists(_lists({"A": ["a"]}).assign(rank=0), truth, k=2)
