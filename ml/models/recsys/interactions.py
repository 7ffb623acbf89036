"""A tenant's interaction history as a sparse (users, items) matrix, and top-k lists from any family."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from ml.models.recsys.families import Recommender

BLOCK_USERS = 2_048  # users scored at once, at most (arrays of one row a user: ALS's vectors, the top-k's ids)
BLOCK_CELLS = BLOCK_USERS * 16_384  # (users, items) cells scored at once: a 128 MiB float32 array


def block_rows(n_items: int) -> int:
    """Users scored at once against ``n_items`` items: :data:`BLOCK_USERS`, or fewer where a ``(users, items)``
    float32 array would pass :data:`BLOCK_CELLS` cells, at least one (2,048 users up to 16,384 items, 142 at
    RetailRocket's 235,061). A block holds several such arrays (scores, the consumed mask, the ranks' sorted keys at
    twice the width): 2,048 users would hold over 10 GB of them at once on a catalogue that size."""
    return min(BLOCK_USERS, max(1, BLOCK_CELLS // max(n_items, 1)))


@dataclass(frozen=True)
class Interactions:
    """A tenant's interaction events before ``as_of``, indexed as a ``(users, items)`` matrix.

    ``user``, ``item``, ``age_days``: one entry per event (row and column codes, days before
    ``as_of``); :attr:`counts` sums them per pair, :meth:`decayed` weights each
    ``2 ** (-age / half_life)`` (SAR's time decay). An entry of ``weight`` 0 is a consumption that
    is no positive interaction (a rating below the tenant's ``min_rating``): the families never
    learn from it (:attr:`counts`, :attr:`seen`), and :attr:`consumed` keeps it out of the user's
    lists under the exclude policy.
    """

    users: np.ndarray  # sorted user ids
    items: np.ndarray  # sorted item ids
    user: np.ndarray
    item: np.ndarray
    age_days: np.ndarray
    as_of: pd.Timestamp
    weight: np.ndarray  # interactions each entry stands for (1 per event; a day's count in a daily mart)

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, as_of: pd.Timestamp | None = None, items: np.ndarray | None = None
    ) -> Interactions:
        """Build from ``events`` with columns ``user_id``, ``item_id``, ``event_at`` (any time
        type) and optionally ``interactions`` (how many positive interactions a row stands for,
        default 1; 0: the user consumed the item without one, e.g. rated it below the threshold).

        ``as_of`` defaults to the day after the newest event (midnight UTC); events at or after it
        are left out. ``items`` fixes the item index (a fitted model's catalogue, sorted): events
        on other items are left out; by default it is every item with a positive interaction (one
        only ever consumed is no family's to score, nor anyone's to be served by them). A user
        with consumed items only has a row (what :func:`recommend` leaves out) and no history.

        Raises:
            ValueError: a column is missing, or no positive interaction is left before ``as_of``
                (without ``items``).
        """
        missing = {"user_id", "item_id", "event_at"} - set(events.columns)
        if missing:
            raise ValueError(f"interactions need columns {sorted(missing)}")
        at = pd.to_datetime(events["event_at"], utc=True)
        if as_of is None:
            as_of = at.max().normalize() + pd.Timedelta(days=1)
        as_of = pd.Timestamp(as_of)
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
        keep = (at < as_of).to_numpy()
        weight = events["interactions"].to_numpy(np.float64) if "interactions" in events else np.ones(len(events))
        keep &= weight >= 0  # (NaN: no row)
        item_ids = events["item_id"].to_numpy().astype(str)
        if items is not None:
            item = columns_of(items, item_ids)
        elif (keep & (weight > 0)).any():
            item, items = _positive_catalogue(item_ids, keep, weight)
        else:
            raise ValueError(f"no interaction before {as_of:%Y-%m-%d}")
        keep &= item >= 0
        user, users = pd.factorize(events["user_id"].to_numpy()[keep].astype(str), sort=True)
        item = item[keep]
        age = ((as_of - at[keep]).dt.total_seconds() / 86_400).to_numpy()
        return cls(np.asarray(users), np.asarray(items).astype(str), user, item, age, as_of, weight[keep])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.users), len(self.items)

    def _matrix(self, values: np.ndarray) -> sp.csr_matrix:
        # a pair's events summed in float64, then rounded: float32 sums depended on the order the
        # events came in (DuckDB returns them in any order), so SAR's scores differed run to run
        # (a pair consumed without a positive interaction sums to 0: not stored)
        summed = sp.csr_matrix((values.astype(np.float64), (self.user, self.item)), shape=self.shape)
        summed.eliminate_zeros()
        return summed.astype(np.float32)

    @cached_property
    def counts(self) -> sp.csr_matrix:
        """Positive interactions per (user, item) pair."""
        return self._matrix(self.weight)

    @cached_property
    def seen(self) -> sp.csr_matrix:
        """Binary ``(users, items)``: the user interacted with the item (positively) at least once."""
        x = self.counts.copy()
        x.data[:] = 1.0
        return x

    @cached_property
    def consumed(self) -> sp.csr_matrix:
        """Binary ``(users, items)``: the user consumed the item, positively or not (what the exclude
        policy never recommends back): :attr:`seen` and the pairs of weight 0."""
        return self._binary(np.ones(len(self.user), dtype=bool))

    @cached_property
    def has_history(self) -> np.ndarray:
        """``(users,)`` bool: the user has a positive interaction (the families can score them)."""
        return np.diff(self.seen.indptr) > 0

    def decayed(self, half_life_days: float) -> sp.csr_matrix:
        """Each interaction weighted ``2 ** (-age_days / half_life_days)``, summed per pair."""
        return self._matrix(self.weight * np.exp2(-self.age_days / half_life_days))

    def users_within(self, days: float) -> sp.csr_matrix:
        """Binary ``(users, items)``: the pair has an interaction in the last ``days`` before ``as_of``."""
        return self._binary((self.age_days < days) & (self.weight > 0))

    def _binary(self, entries: np.ndarray) -> sp.csr_matrix:
        """Binary ``(users, items)``: the pairs of the ``entries`` (a bool mask over the events)."""
        x = sp.csr_matrix(
            (np.ones(int(entries.sum())), (self.user[entries], self.item[entries])), shape=self.shape, dtype=np.float32
        )
        x.data[:] = 1.0
        return x

    def columns(self, item_ids: np.ndarray) -> np.ndarray:
        """Column of each item id, -1 for an item outside the index (no positive interaction before ``as_of``)."""
        return _positions(self._item_index, item_ids)

    def rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user id, -1 for a user who consumed nothing of the index before ``as_of``."""
        return _positions(self._user_index, user_ids)

    @cached_property
    def _user_index(self) -> pd.Index:
        return pd.Index(self.users)

    @cached_property
    def _item_index(self) -> pd.Index:
        return pd.Index(self.items)


def _positive_catalogue(item_ids: np.ndarray, keep: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's column (-1: not kept, or an item no kept row interacted with positively) and the sorted
    catalogue of items with a positive interaction: one hash pass over the kept ids, as ``pd.factorize``."""
    kept = np.flatnonzero(keep)
    codes, uniques = pd.factorize(item_ids[kept], sort=True)
    positive = np.zeros(len(uniques), dtype=bool)
    positive[codes[weight[kept] > 0]] = True
    column = np.full(len(item_ids), -1, dtype=np.int64)
    column[kept] = np.where(positive, np.cumsum(positive) - 1, -1)[codes]
    return column, np.asarray(uniques)[positive]


def columns_of(items: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Index of each of ``item_ids`` in the unique ``items``, -1 where it is not there."""
    return _positions(pd.Index(items), item_ids)


def _positions(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Position of each of ``ids`` (compared as strings) in ``index``, -1 where it is not there.
    A hash lookup: 2.9 million ids in 0.12 s where a sorted search took 0.43 s and a dict 0.28 s
    (benchmarks/README.md, the landing-to-features row of 2026-12-03)."""
    wanted = pd.Index(ids)
    if wanted.inferred_type != "string":
        wanted = wanted.astype(str)
    return index.get_indexer(wanted).astype(np.int64, copy=False)


def recommend(
    model: Recommender,
    data: Interactions,
    user_ids: np.ndarray,
    k: int,
    exclude_seen: bool = True,
    fallback: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each user's ``k`` best items: ``user_id, item_id, rank (1..k), score`` rows.

    ``data`` is the users' history, indexed by the model's items (``Interactions.from_events(...,
    items=model.items)``). With ``exclude_seen`` (the default policy) items a user consumed
    (:attr:`Interactions.consumed`) are never recommended. Users without a positive interaction get
    ``fallback`` scores (``(items,)``, default the model's all-time popularity in ``data``); ties go
    to the lower item id.

    Raises:
        ValueError: ``data`` is indexed by another catalogue than the model's, or the model is an EASE fitted on
            some of its items only (``EASE(columns=...)``).
    """
    if (kept := getattr(model, "kept", None)) is not None:  # (its users without fitted history would get -inf lists)
        raise ValueError(f"{model.name}: fitted on {len(kept)} of its items (EASE's columns): it recommends none")
    if len(data.items) != len(model.items) or not np.array_equal(data.items, model.items):
        raise ValueError(f"{model.name}: history indexed by {len(data.items)} items, the model by {len(model.items)}")
    user_ids = np.asarray(user_ids).astype(str)
    rows = data.rows(user_ids)
    if fallback is None:
        fallback = np.asarray(data.seen.sum(axis=0), dtype=np.float32).ravel()  # all-time popularity
    fallback = np.asarray(fallback, dtype=np.float32)
    history, consumed = model.history(data), data.consumed
    k = min(k, len(model.items))
    parts = []
    block = block_rows(len(model.items))
    for lo in range(0, len(user_ids), block):
        users = rows[lo : lo + block]
        in_data = users >= 0
        known = in_data.copy()
        known[in_data] = data.has_history[users[in_data]]
        s = np.broadcast_to(fallback, (len(users), len(fallback))).copy()
        if known.any():
            s[known] = model.score(history[users[known]])
        if exclude_seen and in_data.any():
            s[in_data] = np.where(consumed[users[in_data]].toarray() > 0, -np.inf, s[in_data])
        parts.append(_top_k(user_ids[lo : lo + block], model.items, s, k))
    if not parts:
        return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
    return pd.concat(parts, ignore_index=True)


def _top_k(user_ids: np.ndarray, items: np.ndarray, s: np.ndarray, k: int) -> pd.DataFrame:
    """The top ``k`` finite scores of each row of ``s`` (ties to the lower column)."""
    n_items = s.shape[1]
    if k < n_items:
        top = np.nonzero(top_mask(s, k))[1].reshape(len(s), k)
    else:
        top = np.tile(np.arange(n_items), (len(s), 1))
    top_scores = np.take_along_axis(s, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
    valid = np.isfinite(top_scores)
    return pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, k)[valid.ravel()],
            "item_id": items[top[valid]],
            "rank": np.tile(np.arange(1, k + 1), len(s))[valid.ravel()],
            "score": top_scores[valid],
        }
    )


def top_mask(s: np.ndarray, k: int) -> np.ndarray:
    """``(users, items)`` bool: ``min(max(k, 0), items)`` columns per row of ``s`` (no NaN), the
    row's ``k`` best as a stable descending sort orders them (those above the k-th largest score,
    then the lowest-index ones equal to it), whether finite or not. O(items) a row, no sort.

    A row whose values above its lowest are fewer than ``k`` (a sparse user whose other scores all
    tie at one value: ``-inf`` once the history candidates keep positive scores only) takes them and
    its first equal-lowest columns without a partition: numpy's partition is at its slowest with the
    k-th value inside a long run of equal values, and the whole-row tie-break cumsum was a quarter of
    the history candidates' time on a clickstream (benchmarks/README.md, *A clickstream's features
    build*). A row mixing two tied values (0 and ``-inf``) still takes the partition.

    Raises:
        ValueError: ``s`` holds NaN (no order would say where it goes).
    """
    if k <= 0:
        return np.zeros(s.shape, dtype=bool)
    if k >= s.shape[1]:
        return np.ones(s.shape, dtype=bool)
    lowest = s.min(axis=1, keepdims=True)  # (NaN where a row holds one)
    if np.isnan(lowest).any():
        raise ValueError("top_mask needs scores without NaN")
    above_lowest = s > lowest
    counts = above_lowest.sum(axis=1)
    few = counts < k
    if not few.any():  # (no copy of the rows)
        return _top_by_partition(s, k)
    out = np.empty(s.shape, dtype=bool)
    out[few] = above_lowest[few] | _first_true(~above_lowest[few], k - counts[few])
    if not few.all():
        out[~few] = _top_by_partition(s[~few], k)
    return out


def _top_by_partition(s: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_mask` of rows with ``k`` values or more above their lowest: those above the k-th largest, then
    the lowest-index ones equal to it."""
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]
    above = s > kth
    return above | _first_true(s == kth, k - above.sum(axis=1))


def _first_true(mask: np.ndarray, need: np.ndarray) -> np.ndarray:
    """``mask`` (``(rows, columns)`` bool) keeping only each row's first ``need[row]`` true columns. A row with no
    more than that keeps its own; the others are counted over a prefix of the columns first (a tie run is usually
    dense: the first few times ``need`` columns hold them), and the rows it does not settle over every column."""
    out = mask.copy()
    excess = np.flatnonzero(mask.sum(axis=1) > need)
    if not len(excess):
        return out
    mask, need = mask[excess], need[excess, None]
    width = min(mask.shape[1], max(64, 4 * int(need.max())))
    counted = np.cumsum(mask[:, :width], axis=1, dtype=np.int32)
    settled = counted[:, -1] >= need[:, 0]
    kept = np.zeros(mask.shape, dtype=bool)
    kept[settled, :width] = mask[settled, :width] & (counted[settled] <= need[settled])
    if not settled.all():
        kept[~settled] = mask[~settled] & (np.cumsum(mask[~settled], axis=1, dtype=np.int32) <= need[~settled])
    out[excess] = kept
    return out


def ranks_at(s: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The rank (1 = best, float64) of each ``s[rows, cols]`` in its row of ``s`` (float32,
    ``(users, items)``, no NaN) ordered by a stable descending sort: ties to the lower column, as
    :func:`recommend` orders; NaN where the score is not finite. ``rows``, ``cols``: non-negative
    indices, in any order.

    The ranks ``argsort(-s, kind="stable")`` gives, without sorting indices: the rows' values are
    sorted (an unstable value sort, several times cheaper), and each pair counts the values above
    and equal to its own by binary searches over every row at once (a row's float32 values map
    to ordered 32-bit integers under its row number). Only pairs tied with another column count
    the lower-index equals: one ``(rows, items)`` comparison per distinct tied value among the
    pairs, at most ``len(s)`` of them at a time; where the pairs hold more distinct tied values
    than :data:`_TIE_ROUNDS` per row that has any, the rows' stable index sort instead.
    benchmarks/README.md (*History candidates*) has the figures.

    Raises:
        ValueError: ``s`` is not float32 (the 32-bit ordering would lose precision), or an index
            is negative.
    """
    if s.dtype != np.float32:
        raise ValueError(f"ranks_at needs float32 scores, got {s.dtype}")
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if len(rows) and min(rows.min(), cols.min()) < 0:
        raise ValueError("ranks_at needs non-negative row and column indices")
    n_items = s.shape[1]
    s = s + np.float32(0.0)  # -0.0 == 0.0 must share a key
    values = s[rows, cols]
    ordered = np.sort(_ordered_bits(s), axis=1).astype(np.uint64)  # each row ascending
    ordered |= np.arange(len(s), dtype=np.uint64)[:, None] << np.uint64(32)  # then rows: one sorted array
    ordered = ordered.ravel()
    wanted = _ordered_bits(values).astype(np.uint64) | rows.astype(np.uint64) << np.uint64(32)
    by_key = np.argsort(wanted, kind="stable")  # sorted queries: the searches walk forward (halves their time)
    at_most, below = np.empty_like(by_key), np.empty_like(by_key)
    at_most[by_key] = np.searchsorted(ordered, wanted[by_key], side="right")
    below[by_key] = np.searchsorted(ordered, wanted[by_key], side="left")
    above = (rows + 1) * n_items - at_most
    finite = np.isfinite(values)
    tied = np.flatnonzero((at_most - below > 1) & finite)  # a consumed item's rank is NaN anyway
    if len(tied):
        above[tied] += _equal_before(s, wanted[tied], cols[tied], above[tied])
    ranks = (above + 1).astype(np.float64)
    ranks[~finite] = np.nan
    return ranks


_TIE_ROUNDS = 16  # distinct tied values a row, on average, before ranks_at sorts the rows' indices instead


def _ordered_bits(v: np.ndarray) -> np.ndarray:
    """float32 -> uint32 ordered as the floats are: the sign bit set for positives, every bit
    flipped for negatives (the usual radix-sort mapping)."""
    bits = v.view(np.uint32)
    return bits ^ ((np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(1 << 31))


def _equal_before(s: np.ndarray, keys: np.ndarray, cols: np.ndarray, above: np.ndarray) -> np.ndarray:
    """For each tied pair (``keys``: row and ordered value, as :func:`ranks_at` makes them), how
    many lower columns of its row hold the same value; ``above``: how many hold a greater one."""
    combos, first, which = np.unique(keys, return_index=True, return_inverse=True)
    combo_rows, which, n_items = (combos >> np.uint64(32)).astype(np.int64), which.ravel(), s.shape[1]
    rows = np.unique(combo_rows)
    if len(combos) > _TIE_ROUNDS * len(rows):  # many tied values: sort the rows
        position = np.empty((len(rows), n_items), dtype=np.int64)
        order = np.argsort(-s[rows], axis=1, kind="stable")
        np.put_along_axis(position, order, np.arange(n_items)[None, :], axis=1)
        return position[np.searchsorted(rows, combo_rows[which]), cols] - above
    values, equal_before = s[combo_rows, cols[first]], np.empty(len(keys), dtype=np.int64)
    step = max(len(s), 1)  # combos compared at once: arrays no larger than s
    for lo in range(0, len(combos), step):
        part = np.flatnonzero((which >= lo) & (which < lo + step))
        equal = np.flatnonzero(s[combo_rows[lo : lo + step]] == values[lo : lo + step, None])  # (combo, column) flat
        combo = which[part] - lo
        equal_before[part] = np.searchsorted(equal, combo * n_items + cols[part]) - np.searchsorted(
            equal, combo * n_items
        )
    return equal_before
