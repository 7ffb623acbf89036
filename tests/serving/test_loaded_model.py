"""A loaded model and the published features it reads."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from ml.models.kinds.base import NotServable
from ml.serving.models import LoadedModel


def test_a_model_whose_features_the_marts_no_longer_have_is_not_servable_with_what_to_do():
    """A champion trained before a feature was renamed (``user_events_7d``, now ``user_events_short``)
    answers its tenant 503 ``model_features_missing`` saying to retrain, never a 500."""
    x = np.random.default_rng(0).normal(size=(200, 2))
    booster = lgb.train({"verbosity": -1, "min_data_in_leaf": 5}, lgb.Dataset(x, x[:, 0] > 0), num_boost_round=2)
    model = LoadedModel("recommender.acme", "3", "tenant", ["user_events_7d", "item_age_days"], booster)
    old = {"user_events_7d": 0, "item_age_days": 1}
    assert model.columns_in(old).tolist() == [0, 1]
    renamed = {"item_age_days": 0, "user_events_short": 1}
    with pytest.raises(NotServable) as caught:
        model.columns_in(renamed)
    assert caught.value.code == "model_features_missing"
    assert "user_events_7d" in caught.value.message and "tenantflow train --tenant" in caught.value.message
