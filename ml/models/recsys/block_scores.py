"""One family's scores for a block of users, as the history candidates need them
(:mod:`ml.models.recsys.candidates`): each user's top positive items, and the score and rank of any
``(user, item)`` pair, ranked as :func:`ml.models.recsys.interactions.recommend` ranks (a stable
descending sort of the user's servable scores: ties to the lower item index; a consumed item has no
rank under the exclude policy).

Two forms, the same answers:

- :class:`SparseScores`, for item-item families (SAR, item-kNN: ``history @ similarity``), whose
  scores are non-negative and zero for most items: kept as the product's stored entries. A user's
  positive servable entries, sorted by value then column, rank first; every other servable item
  scores 0, and a zero-score pair at column ``c`` ranks ``1 + positives + c - (positive or excluded
  columns below c)``. Its cost grows with the users' scores, not the catalogue's width: a clickstream
  visitor touches one to three items, so a few hundred positive entries against tens of thousands of
  items (benchmarks/README.md, *Sparse history scores*).
- :class:`DenseScores`, for any other family: a ``(users, columns)`` float32 array, where
  ``columns`` are the ones the family scores at all (EASE fitted on its ``kept`` columns: the
  others score ``-inf`` and have no rank, so they are left out of the array), ranked by
  :func:`ranks_at` and chosen by :func:`top_mask`.

Pairs are local: ``r`` indexes the block's rows, ``c`` the tenant's catalogue (columns of
:class:`~ml.models.recsys.interactions.Interactions`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from ml.models.recsys.families import Recommender
from ml.models.recsys.interactions import ranks_at, top_mask


class BlockScores(Protocol):
    """A family's scores of a block of users (see the module docstring)."""

    def top(self, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(r, c)``: each user's ``k`` best servable items by the stable descending order, those with a positive
        score and ``allowed`` (``(items,)`` bool) among them; ascending by ``(r, c)``."""
        ...

    def at(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ranks)`` float64 of the pairs: NaN score where the family has no opinion (not finite), NaN rank
        where the item cannot be served (consumed under the exclude policy, or no opinion)."""
        ...


def block_scores(
    model: Recommender, history: sp.csr_matrix, consumed: sp.csr_matrix, exclude_seen: bool
) -> BlockScores:
    """``model``'s scores of the users whose ``history`` rows (``model.history(data)[rows]``) and ``consumed`` rows
    (``data.consumed[rows]``) are given: sparse for an item-item family with no negative score, dense otherwise."""
    similarity = getattr(model, "similarity", None)
    if similarity is not None:
        product = sp.csr_matrix(history @ similarity, dtype=np.float32)  # (the values _ItemItem.score densifies)
        if not product.nnz or product.data.min() >= 0:
            return SparseScores(product, consumed, exclude_seen)
        return DenseScores(product.toarray(), None, consumed, exclude_seen)
    kept = getattr(model, "kept", None)
    if kept is not None:  # EASE on its fitted columns: the rest score -inf
        return DenseScores(model.score_fitted(history), kept, consumed, exclude_seen)  # type: ignore[attr-defined]
    return DenseScores(model.score(history), None, consumed, exclude_seen)


def dense_columns(model: Recommender) -> int:
    """The width of the ``(users, columns)`` arrays :func:`block_scores` holds for ``model`` (0: sparse), to size
    blocks by (:func:`ml.models.recsys.interactions.block_rows`)."""
    if getattr(model, "similarity", None) is not None:
        return 0
    kept = getattr(model, "kept", None)
    return len(model.items) if kept is None else len(kept)


class DenseScores:
    """Scores as a ``(users, columns)`` float32 array (no NaN): every column of the catalogue, or the ascending
    ``columns`` the family scores (the others ``-inf``: no opinion, no rank)."""

    def __init__(self, s: np.ndarray, columns: np.ndarray | None, consumed: sp.csr_matrix, exclude_seen: bool) -> None:
        self.s, self.columns = s, columns
        seen = (consumed if columns is None else consumed[:, columns]).toarray() > 0
        self.servable = np.where(seen, -np.inf, s) if exclude_seen else s

    def top(self, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # positive scores only, which rank above the rest: top_mask's path without a partition on a sparse row
        positive = np.where(self.s > 0, self.servable, -np.inf)
        local = allowed if self.columns is None else allowed[self.columns]
        r, c = np.nonzero(top_mask(positive, k) & np.isfinite(positive) & local[None, :])
        return r, c if self.columns is None else self.columns[c]

    def at(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, ranks = np.full(len(r), np.nan), np.full(len(r), np.nan)
        if self.columns is None:
            inside, local = np.ones(len(c), dtype=bool), c
        else:
            at = np.searchsorted(self.columns, c)
            inside = in_sorted(self.columns, c, at)
            local = at[inside]
        values = self.s[r[inside], local].astype(np.float64)
        scores[inside] = np.where(np.isfinite(values), values, np.nan)
        ranks[inside] = ranks_at(self.servable, r[inside], local)
        return scores, ranks


class SparseScores:
    """Scores as a sparse ``(users, items)`` matrix of non-negative values: an item without a stored entry scores 0
    (see the module docstring for the ranks)."""

    def __init__(self, product: sp.csr_matrix, consumed: sp.csr_matrix, exclude_seen: bool) -> None:
        product.eliminate_zeros()  # a stored 0 is no positive score (scipy's products store none; a caller's may)
        self.n_items = product.shape[1]
        self.keys, self.values = _keys(product), product.data
        self.consumed = _keys(consumed) if exclude_seen else np.empty(0, dtype=np.int64)
        servable = ~in_sorted(self.consumed, self.keys)
        keys, values = self.keys[servable], self.values[servable]
        rows = keys // self.n_items
        self.positives = np.bincount(rows, minlength=product.shape[0])  # servable positive entries a user
        order = np.lexsort((-values, rows))  # by user, then score descending, then column (stable: keys ascend)
        first = np.cumsum(self.positives) - self.positives  # each user's first place in the order
        self.rank = np.empty(len(keys), dtype=np.int64)
        self.rank[order] = np.arange(len(keys)) - first[rows[order]] + 1
        self.positive = keys  # ascending, as the product's keys
        # columns holding no servable 0: positive entries and excluded items (disjoint: a consumed item is not servable)
        self.blocked = np.sort(np.concatenate([keys, self.consumed]))

    def top(self, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.positive[(self.rank <= k) & allowed[self.positive % self.n_items]]
        return np.divmod(chosen, self.n_items)

    def at(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        row_start = r.astype(np.int64) * self.n_items
        key = row_start + c
        at = np.searchsorted(self.keys, key)
        found = in_sorted(self.keys, key, at)
        scores = np.zeros(len(key))
        scores[found] = self.values[at[found]]
        # a zero-score pair: after the user's positives, among the columns below it that hold no servable 0
        below = np.searchsorted(self.blocked, key) - np.searchsorted(self.blocked, row_start)
        ranks = (1 + self.positives[r] + c - below).astype(np.float64)
        at = np.searchsorted(self.positive, key)
        positive = in_sorted(self.positive, key, at)
        ranks[positive] = self.rank[at[positive]]
        ranks[in_sorted(self.consumed, key)] = np.nan
        return scores, ranks


def _keys(m: sp.csr_matrix) -> np.ndarray:
    """The stored entries' ``row * columns + column`` keys, ascending (``m``'s indices sorted in place)."""
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * m.shape[1] + m.indices


def in_sorted(sorted_keys: np.ndarray, keys: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (``at``: its ``searchsorted`` positions, where known)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.searchsorted(sorted_keys, keys) if at is None else at
    return sorted_keys[np.minimum(at, len(sorted_keys) - 1)] == keys
