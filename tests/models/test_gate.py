"""The first-champion rule against the baseline: the headline decides, a tie passes on, in the metric's direction."""

from __future__ import annotations

from ml.models.gate import beats_baseline
from ml.models.kinds import get_kind

RECOMMENDER, CHURN, ENGAGEMENT = get_kind("recommender"), get_kind("churn"), get_kind("engagement")


def test_the_headline_decides_when_it_differs():
    base = {"hit_rate_at_10": 0.80, "ndcg_at_10": 0.40, "map_at_10": 0.30}
    assert beats_baseline(RECOMMENDER, {**base, "ndcg_at_10": 0.41, "hit_rate_at_10": 0.10}, base) == "ndcg_at_10"
    assert beats_baseline(RECOMMENDER, {**base, "ndcg_at_10": 0.39, "hit_rate_at_10": 0.90}, base) is None


def test_a_headline_tie_is_decided_by_the_next_lift_metric():
    base = {"hit_rate_at_10": 0.9593, "ndcg_at_10": 0.403, "map_at_10": 0.252}
    assert beats_baseline(RECOMMENDER, {**base, "hit_rate_at_10": 0.97}, base) == "hit_rate_at_10"
    assert beats_baseline(RECOMMENDER, {**base, "hit_rate_at_10": 0.90, "map_at_10": 0.9}, base) is None
    assert beats_baseline(RECOMMENDER, dict(base), base) is None, "equal on everything is not a win"


def test_missing_metrics_never_win():
    assert beats_baseline(CHURN, {"pr_auc": 0.3}, {}) is None
    assert beats_baseline(CHURN, {}, {"pr_auc": 0.3}) is None


def test_for_errors_lower_is_better_and_ties_pass_on():
    base = {"rmse": 2.5, "mae": 1.8, "poisson_deviance": 3.0}
    assert beats_baseline(ENGAGEMENT, {**base, "rmse": 2.4}, base) == "rmse"
    assert beats_baseline(ENGAGEMENT, {**base, "rmse": 2.6, "mae": 0.1}, base) is None
    assert beats_baseline(ENGAGEMENT, {**base, "mae": 1.7}, base) == "mae"
    assert ENGAGEMENT.headline_score({"rmse": 2.4}) > ENGAGEMENT.headline_score({"rmse": 2.6})
    assert RECOMMENDER.headline_score({"ndcg_at_10": 0.9}) > RECOMMENDER.headline_score({"ndcg_at_10": 0.8})
    assert ENGAGEMENT.improvement("rmse", 2.4, 2.5) > 0 > RECOMMENDER.improvement("hit_rate_at_10", 0.7, 0.8)
