"""EASE's L2 weight chosen per tenant on its own history (an inner random split, never the holdout it is judged on).

EASE's one setting is the weight of its L2 penalty (Steck 2019, eq. 5: ``P = (X^T X + l2 I)^-1``). The right weight
grows with the data: a fixed 500 (the best on the United Kingdom's shop) over-regularises a country of 90 customers
and 1,400 items. :func:`tuned_ease` fits EASE for each weight of :data:`L2_GRID` on 75% of each user's distinct
items (seed 7: another split than the random protocol's seed 42) and keeps the weight with the best mean nDCG@10 on
the other 25% (ties to the larger weight, the default's side). Measured on the random protocol (benchmarks/README.md,
*EASE's L2 weight per tenant*; ``benchmarks/family_blend.py``).

Cost: ``len(L2_GRID)`` more ``items x items`` inverses and scorings of the inner users: at 14,000 items five fits of
about a minute each on one BLAS thread (benchmarks/README.md). So a weight is kept with the version it was chosen for
(its ``ease_tuning`` tag, a :class:`Tuning`) and the next training run reuses it where the history is much the same
(:meth:`Tuning.stale`: chosen less than :data:`RETUNE_DAYS` before, on the same holdout protocol, with users, items
and pairs within :data:`RETUNE_CHANGE`). A retrain for an erasure chooses it again (``ml.models.train``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.models import evaluate
from ml.models.recsys.families import EASE
from ml.models.recsys.interactions import Interactions, recommend

L2_GRID = (50.0, 100.0, 200.0, 500.0, 1000.0)
INNER_SEED = 7
K = evaluate.K
RETUNE_DAYS = 7  # a weight is chosen again weekly (a daily retrain reuses it six days in seven) ...
RETUNE_CHANGE = 0.1  # ... and when the users, items or (user, item) pairs changed by more than 10% since
TAG = "ease_tuning"  # the version tag (and run param) that keeps a Tuning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """EASE's L2 weight as :func:`tuned_ease` chose it, and the history it chose it on."""

    l2: float
    as_of: str  # the history's end, an ISO date (YYYY-MM-DD)
    users: int  # users with history
    items: int  # items with history
    pairs: int  # distinct (user, item) pairs: the Gram matrix's mass, what the right weight grows with
    protocol: str  # the holdout whose history it was (ml.models.ranking_holdout: temporal, random)
    grid: tuple[float, ...] = L2_GRID

    def tag(self) -> str:
        """The version tag's value (JSON)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tag(cls, text: str | None) -> Tuning | None:
        """A tag's Tuning; None for no tag, or one this code cannot read or would not have written (its JSON is not
        :meth:`tag`'s for the values read: another key, type or spelling; a weight off its grid, a negative count:
        the weight is chosen again)."""
        try:
            d = json.loads(text or "")
            t = cls(float(d["l2"]), date.fromisoformat(d["as_of"]).isoformat(), int(d["users"]), int(d["items"]),
                    int(d["pairs"]), str(d["protocol"]), tuple(float(w) for w in d["grid"]))  # fmt: skip
        except Exception:  # any malformed tag: JSON, keys, types, Infinity as a count
            return None
        written = t.tag() == json.dumps(d, sort_keys=True)
        return t if written and t.l2 in t.grid and min(t.users, t.items, t.pairs) >= 0 else None

    def stale(self, data: Interactions, protocol: str, grid: tuple[float, ...] = L2_GRID) -> str | None:
        """Why the weight must be chosen again for ``data`` (the history of a ``protocol`` holdout), or None where it
        may be reused: another grid or protocol, a history that ends before this one's or :data:`RETUNE_DAYS` or
        more after it, or users, items or pairs that changed by more than :data:`RETUNE_CHANGE` (relative)."""
        days = (data.as_of.normalize().tz_localize(None) - pd.Timestamp(self.as_of)).days
        if tuple(grid) != self.grid:
            return "another grid of weights"
        if protocol != self.protocol:
            return f"chosen on the {self.protocol or 'unnamed'} holdout's history"
        if not 0 <= days < RETUNE_DAYS:
            return f"chosen on history to {self.as_of}, {days} days from this one's end"
        was = (self.users, self.items, self.pairs)
        for what, before, now in zip(("users", "items", "pairs"), was, _sizes(data), strict=True):
            if abs(now - before) > RETUNE_CHANGE * max(before, 1):
                return f"{what} {before} -> {now}"
        return None


def tuned_ease(
    data: Interactions,
    max_items: int = 15_000,
    grid: tuple[float, ...] = L2_GRID,
    previous: Tuning | None = None,
    threads: int = 1,
    protocol: str = "",
) -> EASE:
    """An unfitted EASE with the L2 weight of ``grid`` that ranks an inner random split of ``data`` best (module
    docstring; ties to the larger weight); the first weight at or above 500 where no user has an item to hold out.
    Its fits, and the model's, on ``threads`` BLAS threads. ``previous`` (a version's :class:`Tuning`) is reused
    where it is not :meth:`~Tuning.stale` for ``data``, the history of a ``protocol`` holdout. The model's
    ``tuning`` attribute is the Tuning it got (``previous`` where reused).

    Raises:
        CatalogueTooLarge: more items than ``max_items`` (as :class:`~ml.models.recsys.EASE` itself).
    """
    EASE(max_items=max_items).check(len(data.items))
    why = previous.stale(data, protocol, grid) if previous is not None else "no weight chosen before"
    if previous is not None and why is None:
        log.info("EASE's L2 weight %g reused (chosen on history to %s)", previous.l2, previous.as_of)
        return _with(EASE(l2=previous.l2, max_items=max_items, threads=threads), previous)
    log.info("EASE's L2 weight chosen on an inner split: %s", why)
    scores = inner_scores(data, max_items, grid, threads)
    if not scores:
        l2 = next((w for w in grid if w >= 500.0), grid[-1])
    else:
        best = max(scores.values())
        l2 = max(w for w, v in scores.items() if v == best)
    chosen = Tuning(l2, str(data.as_of.date()), *_sizes(data), protocol, tuple(grid))
    return _with(EASE(l2=l2, max_items=max_items, threads=threads), chosen)


def _sizes(data: Interactions) -> tuple[int, int, int]:
    """What a :class:`Tuning` counts of a history: users with history (a positive interaction), items, liked pairs."""
    return int(data.has_history.sum()), len(data.items), data.seen.nnz


def _with(model: EASE, tuning: Tuning) -> EASE:
    model.tuning = tuning
    return model


def previous_tuning(versions: Any) -> Tuning | None:
    """The :class:`Tuning` of the newest of ``versions`` (MLflow model versions, None skipped) that has one, never
    one from before a version trained for an erasure (its weight was chosen with the erased data)."""
    for mv in sorted((v for v in versions if v is not None), key=lambda v: -int(v.version)):
        if (tuning := Tuning.from_tag(mv.tags.get(TAG))) is not None:
            return tuning
        if mv.tags.get("reason") == "erasure":
            return None
    return None


def inner_scores(
    data: Interactions, max_items: int = 15_000, grid: tuple[float, ...] = L2_GRID, threads: int = 1
) -> dict[float, float]:
    """Mean nDCG@10 of EASE with each weight of ``grid`` on the inner split of ``data`` (75% of each user's distinct
    items to fit, the rest to judge; seed :data:`INNER_SEED`); empty where no user has an item to hold out."""
    consumed = data.consumed.tocoo()  # (row-major, as seen's: the same pairs in the same order)
    positive = np.asarray(data.seen[consumed.row, consumed.col]).ravel() > 0
    pairs = pd.DataFrame(
        {"user_id": data.users[consumed.row], "item_id": data.items[consumed.col], "interactions": positive * 1.0}
    )
    train, test = evaluate.positives_split(pairs, 0.75, seed=INNER_SEED)
    if test.empty or not (train["interactions"] > 0).any():
        return {}
    inner = Interactions.from_events(train.assign(event_at=data.as_of - pd.Timedelta(days=1)), data.as_of, data.items)
    users = np.sort(test["user_id"].unique())
    scores = {}
    for l2 in grid:
        lists = recommend(EASE(l2=l2, max_items=max_items, threads=threads).fit(inner), inner, users, K)
        scores[l2] = evaluate.evaluate_lists(lists, test, K).metrics()[f"ndcg_at_{K}"]
    return scores
