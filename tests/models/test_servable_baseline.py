"""Churn's recency and engagement's same-as-last-week as servable models, and the rule that a learnt
model must beat them beyond chance.

Synthetic users: churn's log-odds rise with days since the last activity; in one population a second
feature carries signal of its own (a classifier can learn something recency cannot), in the other
it is noise (recency is all there is to know).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.core.settings import TrainSettings
from ml.models import fit, gate, servable_baseline
from ml.models.kinds import get_kind

CHURN = get_kind("churn")
FEATURES = ["sessions_long", "days_since_last_activity"]


def _users(n: int, seed: int, second_signal: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 40, n)
    sessions = rng.normal(size=n)
    logit = -3.0 + 0.09 * days - second_signal * sessions
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"sessions_long": sessions, "days_since_last_activity": days, "is_churned": churned.astype(int)}
    )


def test_the_baseline_ranks_users_exactly_as_recency_with_probabilities_learnt_from_the_labels():
    train, test = _users(4000, 1, second_signal=1.0), _users(4000, 2, second_signal=1.0)
    booster = servable_baseline.fit_baseline(CHURN, train, FEATURES, TrainSettings())
    p = fit.predict(CHURN, booster, test, FEATURES)
    # strictly increasing in days since the last activity, and blind to every other column
    by_days = pd.Series(p).groupby(test["days_since_last_activity"].to_numpy()).agg(["min", "max"])
    assert (by_days["max"] - by_days["min"]).max() < 1e-12
    assert np.all(np.diff(by_days["min"].to_numpy()) > 0)
    assert booster.feature_importance("split")[0] == 0
    # so recency's own ranking metrics, and probabilities near the churn rate
    recency = test["days_since_last_activity"].to_numpy()
    y = test["is_churned"].to_numpy()
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, recency), abs=1e-12)
    assert average_precision_score(y, p) == pytest.approx(average_precision_score(y, recency), abs=1e-12)
    assert p.min() > 0 and p.max() < 1 and abs(p.mean() - y.mean()) < 0.02
    # a day beyond the table's end shares its last leaf
    far = test.head(1).assign(days_since_last_activity=10_000)
    assert fit.predict(CHURN, booster, far, FEATURES)[0] >= p.max()
    # where recency says nothing (no slope), the order is still recency's, the probabilities the rate
    noise = train.assign(
        days_since_last_activity=np.random.default_rng(5).permutation(train["days_since_last_activity"])
    )
    flat = fit.predict(CHURN, servable_baseline.fit_baseline(CHURN, noise, FEATURES, TrainSettings()), test, FEATURES)
    assert np.all(np.diff(pd.Series(flat).groupby(recency).min().to_numpy()) > 0)
    assert abs(flat.mean() - y.mean()) < 0.03


def test_a_learnt_model_is_chosen_over_the_baseline_only_when_it_leads_beyond_chance():
    policy = TrainSettings()
    for second_signal, learnt_wins in ((1.0, True), (0.0, False)):
        train, holdout = _users(3000, 3, second_signal), _users(1500, 4, second_signal)
        learnt = fit.Candidate("tenant", fit.fit(CHURN, train, FEATURES, policy))
        learnt.metrics = fit.evaluate(CHURN, learnt.booster, holdout, FEATURES, None)
        base = servable_baseline.candidate(CHURN, train, holdout, FEATURES, None, policy)
        assert base is not None and base.family == "recency" and base.label == "recency"
        winner, why = servable_baseline.choose(CHURN, [learnt, base], holdout, FEATURES)
        assert (winner is learnt) == learnt_wins, why
        low = float(why.split("lead 95% interval [")[1].split(",")[0])
        assert (low > 0) == learnt_wins, why
        if not learnt_wins:
            assert why.startswith("recency:") and why.endswith("not beyond chance")
        # once there is a champion, the best candidate goes to the gate whatever its lead
        best = max((learnt, base), key=lambda c: c.metrics["pr_auc"])
        assert servable_baseline.choose(CHURN, [learnt, base], holdout, FEATURES, first=False)[0] is best


def _weeks(n: int, seed: int, trend: float) -> pd.DataFrame:
    """Users' sessions last week and next: next week's is a Poisson count whose mean is last week's
    (so last week's count is the best guess there is), plus ``trend`` times a second feature's signal."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    last = rng.poisson(rng.gamma(2.0, 3.0, n))
    nxt = rng.poisson(np.clip(last + 3 * trend * signal, 0, None))
    return pd.DataFrame({"signal": signal, "sessions_short": last.astype(float), "sessions_next_short": nxt})


def test_same_as_last_window_serves_the_last_windows_count_and_a_poisson_model_must_beat_it_beyond_chance():
    engagement = get_kind("engagement")
    features = ["signal", "sessions_short"]
    policy = TrainSettings()
    frame = _weeks(6000, 1, 0.0)
    booster = servable_baseline.fit_baseline(engagement, frame, features, policy)
    probe = pd.DataFrame({"signal": 0.0, "sessions_short": [0.0, 1.0, 3.0, 12.0, np.nan]})
    assert fit.predict(engagement, booster, probe, features) == pytest.approx([0.0, 1.0, 3.0, 12.0, 0.0], abs=1e-6)

    for trend, learnt_wins in ((0.0, False), (1.0, True)):
        train, holdout = _weeks(6000, 2, trend), _weeks(3000, 3, trend)
        base = servable_baseline.candidate(engagement, train, holdout, features, None, policy)
        assert base is not None and base.family == "same_as_last_window"
        assert base.metrics["rmse"] == pytest.approx(
            engagement.metrics(holdout, engagement.baseline(holdout), None)["rmse"]
        )
        learnt = fit.Candidate("tenant", fit.fit(engagement, train, features, policy))
        learnt.metrics = fit.evaluate(engagement, learnt.booster, holdout, features, None)
        winner, why = servable_baseline.choose(engagement, [learnt, base], holdout, features)
        assert (winner is learnt) == learnt_wins, why
        if not learnt_wins:
            assert why.startswith("same_as_last_window:") and why.endswith("not beyond chance")


def test_a_kind_without_a_baseline_feature_has_no_servable_baseline():
    recommender = get_kind("recommender")
    assert recommender.baseline_feature is None
    assert (
        servable_baseline.candidate(recommender, pd.DataFrame({"x": [1]}), pd.DataFrame(), ["x"], None, TrainSettings())
        is None
    )
    no_churners = _users(200, 0, 0.0).assign(is_churned=0)
    assert servable_baseline.candidate(CHURN, no_churners, no_churners, FEATURES, None, TrainSettings()) is None
    with pytest.raises(ValueError, match="baseline feature"):
        servable_baseline.fit_baseline(CHURN, _users(10, 0, 0.0), ["sessions_long"], TrainSettings())


def test_the_gate_makes_a_learnt_first_champion_only_of_a_lead_over_the_baseline_beyond_chance():
    """The gate's own check, behind training's choice: ahead of recency on the point estimate is
    not enough; a young tenant's global model, whose baseline could not compete, serves on it."""
    policy = TrainSettings()
    train = _users(3000, 3, 0.3)
    learnt = fit.Candidate("tenant", fit.fit(CHURN, train, FEATURES, policy))
    for holdout, promoted in ((_users(300, 7, 0.3), False), (_users(4000, 7, 1.0), True)):
        learnt.metrics = fit.evaluate(CHURN, learnt.booster, holdout, FEATURES, None)
        recency = fit.baseline_metrics(CHURN, holdout, None)
        assert learnt.metrics["pr_auc"] > recency["pr_auc"]  # ahead on the point estimate either way
        decision = gate._first_champion(CHURN, learnt, recency, holdout, FEATURES)
        assert decision.promote == promoted, decision.reason
        assert "lead 95% interval [" in decision.reason
        if not promoted:
            assert "not beyond chance" in decision.reason
            young = dataclasses.replace(learnt, trained_on="global", model_uri="models:/m-1")
            assert gate._first_champion(CHURN, young, recency, holdout, FEATURES).promote


def test_without_a_holdout_a_learnt_model_is_preferred_and_a_global_baseline_is_named_as_such():
    policy = TrainSettings()
    train, empty = _users(3000, 3, 1.0), _users(10, 4, 1.0).head(0)
    learnt = fit.Candidate("global", fit.fit(CHURN, train, FEATURES, policy), model_uri="models:/m-1")
    own = servable_baseline.candidate(CHURN, train, empty, FEATURES, None, policy)
    pooled = servable_baseline.candidate(CHURN, train, empty, FEATURES, None, policy, "global")
    assert own is not None and pooled is not None and own.metrics == {} == learnt.metrics
    assert (own.label, pooled.label, learnt.label) == ("recency", "global.recency", "global")
    for first in (True, False):
        assert servable_baseline.choose(CHURN, [own, pooled, learnt], empty, FEATURES, first=first)[0] is learnt
    assert servable_baseline.choose(CHURN, [pooled, own], empty, FEATURES)[0] is own, "then the tenant's own"
    # a baseline whose holdout users all share one value predicts one value: it may serve all the same
    same = _users(300, 5, 1.0).assign(days_since_last_activity=3)
    problems = gate.sanity_problems(CHURN, own.booster, same, FEATURES, policy, None)
    assert problems == ["constant predictions on the holdout"]
    assert gate.sanity_problems(CHURN, own.booster, same, FEATURES, policy, None, may_be_constant=True) == []
