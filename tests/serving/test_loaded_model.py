"""A loaded model and the published features it reads."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from ml.core.settings import ServeSettings, get_settings
from ml.core.tenants import Tenant
from ml.data.publish import OnlineTable, PublishedFeatures
from ml.models.kinds.base import NotServable
from ml.serving.models import LoadedModel
from ml.serving.routes.predictions import RequestContext
from ml.serving.state import ServingState


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


def _booster(columns: int):
    x = np.random.default_rng(0).normal(size=(200, columns))
    return lgb.train({"verbosity": -1, "min_data_in_leaf": 5}, lgb.Dataset(x, x[:, 0] > 0), num_boost_round=2)


def test_a_challenger_the_published_features_cannot_answer_leaves_its_arm_to_the_champion(tmp_path, monkeypatch):
    """Every user of a 100% challenger split is the challenger's, unless the challenger needs a
    column the published snapshot lacks (trained before a rename): then the champion answers them,
    rather than a 503 for the whole arm."""
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path))
    state = ServingState(get_settings(), ServeSettings())
    table = OnlineTable(
        columns={"sessions_short": 0, "events_long": 1},
        keys=np.array(["u1"]),
        offsets=np.array([0, 1]),
        items=None,
        matrix=np.zeros((1, 2), dtype=np.float32),
    )
    state.features["acme"] = PublishedFeatures("s1", "2026-12-01", {"user_features": table}, {})
    state.splits[("acme", "engagement")] = 100
    champion = LoadedModel("engagement.acme", "1", "tenant", ["sessions_short", "events_long"], _booster(2))
    state.models.models[("acme", "engagement", "champion")] = champion
    fresh = LoadedModel("engagement.acme", "2", "tenant", ["events_long", "sessions_short"], _booster(2))
    state.models.models[("acme", "engagement", "challenger")] = fresh
    ctx = RequestContext(state, Tenant("acme", "eu"), "engagement")
    assert {ctx.arm(f"u{i}") for i in range(20)} == {"challenger"}
    old = LoadedModel("engagement.acme", "2", "tenant", ["sessions_7d", "events_long"], _booster(2))
    state.models.models[("acme", "engagement", "challenger")] = old
    assert {ctx.arm(f"u{i}") for i in range(20)} == {"champion"}
