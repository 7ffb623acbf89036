"""The global model's row budget: shared fairly between tenants, whole queries, reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.models.fit import fair_shares, sample_rows
from ml.models.kinds import get_kind


def test_a_small_tenant_keeps_all_its_rows_and_the_big_ones_share_the_rest():
    shares = fair_shares({"acme": 1_224_389, "globex": 812_300, "hooli": 94_153}, 1_000_000)
    assert shares["hooli"] == 94_153
    assert abs(shares["acme"] - shares["globex"]) <= 1
    assert sum(shares.values()) == 1_000_000


def test_under_budget_every_row_is_kept():
    sizes = {"a": 10, "b": 20}
    assert fair_shares(sizes, 1_000) == sizes


def _queries(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 40, n)
    q = np.repeat(np.arange(n), sizes)
    return pd.DataFrame({"query_id": q, "clicked": rng.random(len(q)) < 0.1, "x": rng.random(len(q))})


def test_ranking_rows_are_sampled_as_whole_queries_in_order_and_reproducibly():
    kind = get_kind("recommender")
    frame = _queries(500)
    picked = sample_rows(kind, frame, 3_000, "snap:recommender")
    assert 2_500 < len(picked) <= 3_000
    sizes = frame.groupby("query_id").size()
    assert (picked.groupby("query_id").size() == sizes.loc[picked["query_id"].unique()]).all(), "a query was cut"
    assert picked.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(picked, sample_rows(kind, frame, 3_000, "snap:recommender"))
    assert not picked.equals(sample_rows(kind, frame, 3_000, "other-snap:recommender"))


def test_churn_rows_are_sampled_one_by_one():
    kind = get_kind("churn")
    frame = pd.DataFrame({"x": np.arange(1_000)})
    picked = sample_rows(kind, frame, 100, "s")
    assert len(picked) == 100 and picked["x"].is_monotonic_increasing
    assert sample_rows(kind, frame, 5_000, "s") is frame
