"""Why a classic family recommends an item: the user's history items that make up its score.

Every family but popularity scores a user as a sum over the items of their history, so the
explanation of item ``i`` is that sum's largest terms ("because you interacted with h"):

- item-kNN, SAR: ``x_h * S[h, i]`` (the user's weight on ``h`` times the items' similarity);
- EASE: ``x_h * B[h, i]``;
- ALS: ``c_h * y_i^T A^-1 y_h`` with ``A = Y^T C_u Y + l2 I`` (Hu, Koren, Volinsky, ICDM 2008,
  section 5: the score is a sum over the user's past items, weighted by a user-specific
  similarity), what ``implicit``'s ``explain`` computes;
- popularity: the item's own popularity, one term.

The terms add up to the score the family served (a test checks it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ml.models.recsys.families import ALS, EASE, Popularity, Recommender, _ItemItem

Term = tuple[str, float, float]  # (what: "history:<item>" or "popularity", its value, its part of the score)


def explain(model: Recommender, history: sp.csr_matrix, item_cols: np.ndarray, top: int = 3) -> list[list[Term]]:
    """The ``top`` largest terms (by absolute value) of each of ``item_cols``' scores for one user.

    Args:
        model: a fitted family.
        history: the user's ``(1, items)`` row of ``model.history(data)``.
        item_cols: the recommended items' columns in ``model.items``.
        top: terms per item.
    """
    if isinstance(model, Popularity):
        return [[("popularity", float(model.item_scores[c]), float(model.item_scores[c]))] for c in item_cols]
    row = history.tocsr()
    cols, x = row.indices, row.data.astype(np.float64)
    if isinstance(model, _ItemItem):
        terms = x[:, None] * model.similarity[cols][:, item_cols].toarray()
    elif isinstance(model, EASE):
        if model.kept is not None:  # (its weights index the fitted columns only)
            raise TypeError("no explanation for an EASE fitted on some of its items (EASE's columns)")
        terms = x[:, None] * model.b[np.ix_(cols, item_cols)]
    elif isinstance(model, ALS):
        mine, theirs = (model.item_factors[c].astype(np.float64) for c in (cols, item_cols))
        conf = model.alpha * x
        a = model.gram() + (mine.T * (conf - 1)) @ mine
        terms = conf[:, None] * (mine @ np.linalg.solve(a, theirs.T))
        x = model.alpha * x  # the confidence is the value ALS weighs an item by
    else:
        raise TypeError(f"no explanation for {type(model).__name__}")
    out = []
    for j in range(len(item_cols)):
        order = np.argsort(-np.abs(terms[:, j]), kind="stable")[:top]
        out.append([(f"history:{model.items[cols[o]]}", float(x[o]), float(terms[o, j])) for o in order])
    return out
