"""EASE's L2 weight chosen per tenant on its own history (an inner random split, never the holdout it is judged on).

EASE's one setting is the weight of its L2 penalty (Steck 2019, eq. 5: ``P = (X^T X + l2 I)^-1``). The right weight
grows with the data: a fixed 500 (the best on the United Kingdom's shop) over-regularises a country of 90 customers
and 1,400 items. :func:`tuned_ease` fits EASE for each weight of :data:`L2_GRID` on 75% of each user's distinct
items (seed 7: another split than the random protocol's seed 42) and keeps the weight with the best mean nDCG@10 on
the other 25% (ties to the larger weight, the default's side). Measured on the random protocol (benchmarks/README.md,
*EASE's L2 weight per tenant*; ``benchmarks/family_blend.py``).

Cost: ``len(L2_GRID)`` more ``items x items`` inverses and scorings of the inner users per fit of the competition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.models import evaluate
from ml.models.recsys.families import EASE
from ml.models.recsys.interactions import Interactions, recommend

L2_GRID = (50.0, 100.0, 200.0, 500.0, 1000.0)
INNER_SEED = 7
K = evaluate.K


def tuned_ease(data: Interactions, max_items: int = 15_000, grid: tuple[float, ...] = L2_GRID) -> EASE:
    """An unfitted EASE with the L2 weight of ``grid`` that ranks an inner random split of ``data`` best (module
    docstring; ties to the larger weight); the first weight at or above 500 where no user has an item to hold out.

    Raises:
        CatalogueTooLarge: more items than ``max_items`` (as :class:`~ml.models.recsys.EASE` itself).
    """
    scores = inner_scores(data, max_items, grid)
    if not scores:
        return EASE(l2=next((w for w in grid if w >= 500.0), grid[-1]), max_items=max_items)
    best = max(scores.values())
    return EASE(l2=max(w for w, v in scores.items() if v == best), max_items=max_items)


def inner_scores(data: Interactions, max_items: int = 15_000, grid: tuple[float, ...] = L2_GRID) -> dict[float, float]:
    """Mean nDCG@10 of EASE with each weight of ``grid`` on the inner split of ``data`` (75% of each user's distinct
    items to fit, the rest to judge; seed :data:`INNER_SEED`); empty where no user has an item to hold out."""
    seen = data.seen.tocoo()
    pairs = pd.DataFrame({"user_id": data.users[seen.row], "item_id": data.items[seen.col]})
    train, test = evaluate.stratified_random_split(pairs, 0.75, seed=INNER_SEED)
    if test.empty or train.empty:
        return {}
    inner = Interactions.from_events(train.assign(event_at=data.as_of - pd.Timedelta(days=1)), data.as_of, data.items)
    users = np.sort(test["user_id"].unique())
    scores = {}
    for l2 in grid:
        lists = recommend(EASE(l2=l2, max_items=max_items).fit(inner), inner, users, K)
        scores[l2] = evaluate.evaluate_lists(lists, test, K).metrics()[f"ndcg_at_{K}"]
    return scores
