"""The first-champion rule against the baseline: the headline decides, a tie passes on."""

from ml.kinds import CHURN, RECOMMENDER
from ml.train import beats_baseline


def test_the_headline_decides_when_it_differs():
    base = {"hit_rate_at_10": 0.80, "ndcg_at_10": 0.40, "map_at_10": 0.30}
    assert beats_baseline(RECOMMENDER, {**base, "hit_rate_at_10": 0.81, "ndcg_at_10": 0.10}, base) == "hit_rate_at_10"
    assert beats_baseline(RECOMMENDER, {**base, "hit_rate_at_10": 0.79, "ndcg_at_10": 0.90}, base) is None


def test_a_saturated_headline_tie_is_decided_by_the_next_lift_metric():
    base = {"hit_rate_at_10": 0.9593, "ndcg_at_10": 0.403, "map_at_10": 0.252}
    assert beats_baseline(RECOMMENDER, {**base, "ndcg_at_10": 0.577}, base) == "ndcg_at_10"
    assert beats_baseline(RECOMMENDER, {**base, "ndcg_at_10": 0.300, "map_at_10": 0.9}, base) is None
    assert beats_baseline(RECOMMENDER, dict(base), base) is None, "equal on everything is not a win"


def test_missing_metrics_never_win():
    assert beats_baseline(CHURN, {"pr_auc": 0.3}, {}) is None
    assert beats_baseline(CHURN, {}, {"pr_auc": 0.3}) is None
