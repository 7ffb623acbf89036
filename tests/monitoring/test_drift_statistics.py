"""Drift verdicts that hold at real window sizes: stationary windows are rarely flagged, real shifts are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.monitoring.drift import chance_thresholds, column_rows, drift_report

COLUMNS = [f"c{i}" for i in range(10)]
BASE = {"tenant_id": "t", "check": "feature_drift", "kind": "recommender"}


def _share_drifted(rows: int, seed: int, scale: float = 1.0, floor: float = 0.1) -> tuple[float, list]:
    """Two windows of ten gamma(2, 5) columns (the current one's scale times ``scale``), judged as
    the monitor judges them; the share of drifted columns and the column rows."""
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({c: rng.gamma(2, 5, rows) for c in COLUMNS})
    cur = pd.DataFrame({c: rng.gamma(2, 5 * scale, rows) for c in COLUMNS})
    distances, problems = drift_report(ref, cur, COLUMNS, [], floor)
    chance = chance_thresholds(ref, cur, COLUMNS, [], floor)
    judged = column_rows(BASE, distances, problems, floor, thresholds=chance)
    return float(np.mean([r.drifted for r in judged])), judged


def test_stationary_windows_at_the_minimum_size_are_rarely_flagged():
    """With a fixed 0.1, 6 of these 10 stationary 300-row windows were flagged as feature drift
    (share of drifted columns >= 0.5) and 47% of their columns exceeded 0.1."""
    shares = [_share_drifted(300, seed)[0] for seed in range(10)]
    assert sum(s >= 0.5 for s in shares) == 0
    assert np.mean(shares) <= 0.15  # columns flagged about alpha = 5% of the time


def test_a_real_shift_is_still_flagged_and_the_raised_threshold_says_why():
    share, rows = _share_drifted(300, seed=0, scale=1.5)
    assert share == 1.0
    assert all(r.threshold > 0.1 and "reach it by chance" in r.detail for r in rows)


def test_large_windows_keep_the_policys_effect_size():
    """At 20,000 rows chance distances are far below 0.1: a 5% scale change is real but too small to act on."""
    share, rows = _share_drifted(20_000, seed=1, scale=1.05)
    assert share == 0.0 and all(r.threshold == pytest.approx(0.1) for r in rows)


def test_the_null_is_of_the_distance_evidently_reports():
    """The statistic permuted (Evidently's stat-test functions, on the columns as drift_report
    prepares them) is the one its report gives; a clear categorical shift is beyond chance, a
    sample of the same distribution is not."""
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
    from evidently.legacy.core import ColumnType

    from ml.monitoring.drift import _as_categories

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.gamma(2, 5, 400), "k": rng.choice(list("abcd"), 400)})
    cur = pd.DataFrame({"x": rng.gamma(2, 5, 300), "k": rng.choice(list("abcd"), 300, p=[0.7, 0.1, 0.1, 0.1])})
    distances, _ = drift_report(ref, cur, ["x"], ["k"], 0.1)
    assert distances["x"] == pytest.approx(_wasserstein_distance_norm(ref.x, cur.x, ColumnType.Numerical, 0.1)[0])
    k_ref, k_cur = _as_categories(ref.k, cur.k)
    assert distances["k"] == pytest.approx(_jensenshannon(k_ref, k_cur, ColumnType.Categorical, 0.1)[0])
    chance = chance_thresholds(ref, cur, ["x"], ["k"], 0.0)
    assert distances["k"] > chance["k"] and distances["x"] < chance["x"]
