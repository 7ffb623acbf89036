"""Whole-history candidates for the recommender's re-ranker, every candidate scored by the classic
families: the candidate generation and the baseline-score features of a two-stage recommender.

The dbt model ``int_recommendation_candidates__history`` hands it each tenant's SQL sources'
candidates (popular, trending, topic, co-visited items, for every user the SQL side generates for)
and daily interactions: :func:`fit_cutoff` once a cutoff, :func:`score_part` for each part of the
cutoff's users (:func:`score_candidates` does both for a tenant held in memory). At each cutoff C, every
family of :data:`SCORERS` is fitted on the interactions strictly before C (point in time, as the
SQL features) and, for every user with history before C:

- adds the user's top ``per_user`` items of the whole history as candidates
  (``is_history_candidate``), consumed items left out when the tenant excludes them;
- gives every candidate of the user, whatever its source, the family's score (``<family>_score``:
  the family's own scale, higher is better) and its rank among the items the user can be served
  (``<family>_rank``, 1 = best; null for a consumed item under the exclude policy).

Scores are null where the family has no opinion: a user or item without interactions before C,
or, for EASE on a catalogue above :data:`EASE_COLUMNS` items, an item outside the ones with most users. Each user also gets ``user_history_items``
(distinct items before C) and ``user_days_since_last_interaction`` (its last consumption), so users
inactive for a month are described too. Cost: one fit per family and cutoff, and each block of users' scores
(:mod:`ml.models.recsys.block_scores`): SAR's as its positive entries (growing with the users' histories, not the
catalogue), EASE's as a ``(users, fitted columns)`` array, blocks of :func:`ml.models.recsys.interactions.block_rows`
users of that width (EASE's fit is an ``items x items`` inverse: on one thread 2.1 s at 4,000 items, 61 s at 14,000,
``benchmarks/ease_fit.py``: hence :data:`EASE_COLUMNS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.models.recsys.block_scores import block_scores, dense_columns, in_sorted
from ml.models.recsys.families import EASE, SAR, Recommender, fitted
from ml.models.recsys.interactions import Interactions, block_rows
from ml.models.recsys.served import history_events

log = logging.getLogger(__name__)

# The families whose scores the re-ranker sees, with the settings they compete with
# (ml.models.ranking.families): item-item co-occurrence with time decay, and a linear autoencoder.
# EASE is fitted on the EASE_COLUMNS items with most users of a larger catalogue, at every cutoff of every build: a
# 14,000-item tenant's seven fits took 7 x 61 s of its features build (benchmarks/README.md, *EASE's columns*).
EASE_COLUMNS = 6_000
SCORERS: dict[str, Callable[[], Recommender]] = {
    "sar": lambda: SAR("jaccard", half_life_days=30.0, neighbours=200),
    "ease": lambda: EASE(l2=500.0, columns=EASE_COLUMNS),
}
# The tenant's interactions per day, as score_candidates' ``history`` (``{events}``: the
# ``stg_lake__events`` relation). The dbt model and benchmarks/history_candidates.py both read it.
# A day the user only consumed the item (a rating below the tenant's min_rating) has 0 interactions:
# never a candidate for them under the exclude policy, nothing the families learn from.
DAILY_INTERACTIONS_SQL = (
    "select tenant_id, user_id, item_id, event_date, count(*) filter (where is_interaction) as interactions "
    "from {events} where is_consumed and user_id is not null and item_id is not null group by all"
)
SOURCE_FLAGS = ["is_popular_candidate", "is_trending_candidate", "is_topic_candidate", "is_covisit_candidate"]
OUTPUT_COLUMNS = [
    "tenant_id",
    "cutoff_date",
    "user_id",
    "item_id",
    *SOURCE_FLAGS,
    "covisit_sessions_long",
    "is_history_candidate",
    *[f"{name}_{what}" for name in SCORERS for what in ("score", "rank")],
    "user_history_items",
    "user_days_since_last_interaction",
]


def score_candidates(
    sources: pd.DataFrame,
    history: pd.DataFrame,
    per_user: int,
    exclude_seen: bool = True,
    catalogue: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One tenant's candidates at every cutoff of ``sources``, with the history source and scores.

    All in memory at once; the dbt model scores a large tenant's users in parts instead, the same
    way (:func:`fit_cutoff` once a cutoff, :func:`score_part` for each part of the cutoff's users).

    Args:
        sources: the SQL sources' candidates, ``tenant_id, cutoff_date, user_id, item_id`` and the
            source flags and ``covisit_sessions_long`` (``int_recommendation_candidates__as_of`` rows).
        history: the tenant's interactions per day, ``user_id, item_id, event_date, interactions``
            (events on or after a cutoff are never used for it).
        per_user: items each family adds per user.
        exclude_seen: the tenant's seen-items policy (exclude consumed items from new candidates).
        catalogue: the tenant's catalogue, ``item_id, published_at`` (``int_items__catalogued``):
            new candidates are items published before the cutoff (None: any item with history).

    Returns:
        :data:`OUTPUT_COLUMNS` rows: the ``sources`` rows (their flags kept) and the new
        history candidates (source flags false), unique per (cutoff, user, item).
    """
    if sources.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    tenant = str(sources["tenant_id"].iloc[0])
    events = history_events(history)
    parts = [
        score_part(fit_cutoff(tenant, pd.Timestamp(cutoff), events, catalogue), at_cutoff, per_user, exclude_seen)
        for cutoff, at_cutoff in sources.groupby("cutoff_date", sort=True)
    ]
    return candidates_frame(tenant, parts)


def candidates_frame(tenant: str, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """:data:`OUTPUT_COLUMNS` rows of one tenant from :func:`score_part`'s columns (one part or more)."""
    # one frame from the parts' columns: each copied once at most (frames concatenated and re-selected
    # copied the 3 million rows of a 17,000-user tenant four times), then not again: a frame built
    # with pandas' default copy=True gathers same-typed columns into blocks, a second copy of every
    # row (1.6 s of 8.4 s on that tenant: benchmarks/README.md)
    columns = {
        name: parts[0][name] if len(parts) == 1 else np.concatenate([part[name] for part in parts])
        for name in OUTPUT_COLUMNS[1:]
    }
    return pd.DataFrame({"tenant_id": np.full(len(columns["user_id"]), tenant, dtype=object), **columns}, copy=False)


@dataclass(frozen=True)
class FittedCutoff:
    """The families fitted on a tenant's interactions before one cutoff, which every part of the
    cutoff's users is scored with (:func:`score_part`).

    Attributes:
        data: the interactions before the cutoff (None: there were none: no scores, no history candidates).
        models: family name (:data:`SCORERS`) -> the family fitted on ``data`` (one that could not be
            fitted, EASE above its catalogue limit, left out).
        allowed: per column of ``data``, whether the item may be a new candidate (published before the cutoff).
        items_seen: per user row of ``data``, the distinct items it interacted with.
        days_since: per user row of ``data``, whole days from its last consumption to the cutoff.
    """

    data: Interactions | None
    models: dict[str, Recommender]
    allowed: np.ndarray
    items_seen: np.ndarray
    days_since: np.ndarray


def fit_cutoff(tenant: str, cutoff: pd.Timestamp, events: pd.DataFrame, catalogue: pd.DataFrame | None) -> FittedCutoff:
    """Every family of :data:`SCORERS` fitted on ``events`` (``served.history_events`` rows) strictly
    before ``cutoff``; ``tenant`` names it in the log; ``catalogue`` as :func:`score_candidates`'."""
    before = events[events["event_at"] < cutoff.tz_localize("UTC")]
    if not (before["interactions"] > 0).any():
        return FittedCutoff(None, {}, np.empty(0, dtype=bool), np.empty(0, dtype=np.int64), np.empty(0))
    data = Interactions.from_events(before, cutoff)
    servable = _published_before(catalogue, cutoff)
    # (pandas hashes the ids; numpy's isin sorts object arrays: 6.8 s a cutoff at 14,000 items, under cProfile)
    allowed = np.ones(len(data.items), dtype=bool) if servable is None else pd.Index(data.items).isin(servable)
    return FittedCutoff(data, _fit_scorers(tenant, data, cutoff), allowed, *_user_history(data))


def score_part(fit: FittedCutoff, sources: pd.DataFrame, per_user: int, exclude_seen: bool) -> dict[str, np.ndarray]:
    """The candidates of the users in ``sources`` (rows of the cutoff ``fit`` was fitted for,
    every row of each of those users): :data:`OUTPUT_COLUMNS` but ``tenant_id``, as columns.

    Pairs are keyed by ``row * items + column`` of the cutoff's interaction matrix, so the sources
    meet the scores by integer search, not a join on string ids (half the model's time at 17,000
    users a tenant went to pandas joins: benchmarks/README.md).
    """
    out = {
        "cutoff_date": sources["cutoff_date"].to_numpy(),
        "user_id": sources["user_id"].astype(str).to_numpy(),
        "item_id": sources["item_id"].astype(str).to_numpy(),
        "covisit_sessions_long": sources["covisit_sessions_long"].fillna(0).to_numpy(np.int64),
        # as the dbt model types them, whatever the caller's dtypes
        **{flag: sources[flag].astype("boolean").fillna(False).to_numpy(bool) for flag in SOURCE_FLAGS},
    }
    data, models = fit.data, fit.models
    if data is None:
        return _with_new(out, {}, {}, 0)
    n_items = len(data.items)
    row, col = data.rows(out["user_id"]), data.columns(out["item_id"])
    in_data = row >= 0
    row[in_data] = np.where(data.has_history[row[in_data]], row[in_data], -1)  # only consumed: no family's opinion
    known = (row >= 0) & (col >= 0)  # the source pairs a family can score
    source_keys = row[known] * n_items + col[known]
    by_key = np.sort(source_keys)
    users = np.unique(row[row >= 0])
    blocks = []
    step = block_rows(max([dense_columns(model) for model in models.values()], default=0))
    families = {name: (model, model.history(data)) for name, model in models.items()}  # (SAR's decay: once a part)
    for lo in range(0, len(users), step):
        block = users[lo : lo + step]
        a, b = np.searchsorted(by_key, [block[0] * n_items, (block[-1] + 1) * n_items])
        blocks.append(_score_block(data, families, block, by_key[a:b], per_user, exclude_seen, fit.allowed))
    scored = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]} if blocks else _no_scores(models)
    keys = scored.pop("key")  # ascending: blocks are ascending ranges of rows
    at = np.searchsorted(keys, source_keys)
    added = np.ones(len(keys), dtype=bool)
    added[at] = False
    in_sources = {}
    for name, values in scored.items():
        in_sources[name] = np.full(len(sources), False if values.dtype == bool else np.nan, dtype=values.dtype)
        in_sources[name][known] = values[at]
    has_history, user_row = row >= 0, np.maximum(row, 0)
    in_sources["user_history_items"] = np.where(has_history, fit.items_seen[user_row], 0)
    in_sources["user_days_since_last_interaction"] = np.where(has_history, fit.days_since[user_row], np.nan)
    r, c = np.divmod(keys[added], n_items)
    new = {
        "user_id": data.users[r],
        "item_id": data.items[c],
        **{name: values[added] for name, values in scored.items()},
        "user_history_items": fit.items_seen[r],
        "user_days_since_last_interaction": fit.days_since[r],
    }
    return _with_new(out, in_sources, new, len(r))


def _published_before(catalogue: pd.DataFrame | None, cutoff: pd.Timestamp) -> np.ndarray | None:
    """Sorted ids of the catalogue's items published before ``cutoff`` (None: no catalogue given)."""
    if catalogue is None:
        return None
    published = pd.to_datetime(catalogue["published_at"], utc=True)
    return np.sort(catalogue.loc[(published < cutoff.tz_localize("UTC")).to_numpy(), "item_id"].astype(str).unique())


def _fit_scorers(tenant: str, data: Interactions, cutoff: pd.Timestamp) -> dict[str, Recommender]:
    models = {}
    for name, make in SCORERS.items():
        try:
            models[name] = fitted(make(), data)
        except ValueError as e:  # EASE above its catalogue limit: no scores from it, said once
            log.info("%s at %s: no %s scores: %s", tenant, f"{cutoff:%Y-%m-%d}", name, e)
    return models


def _no_history(rows: int) -> dict[str, np.ndarray]:
    """The history columns of ``rows`` source pairs whose user has no history, or no family scores."""
    scores = {f"{name}_{what}": np.full(rows, np.nan) for name in SCORERS for what in ("score", "rank")}
    return {
        "is_history_candidate": np.zeros(rows, dtype=bool),
        **scores,
        "user_history_items": np.zeros(rows, dtype=np.int64),
        "user_days_since_last_interaction": np.full(rows, np.nan),
    }


def _with_new(
    sources: dict[str, np.ndarray], in_sources: dict[str, np.ndarray], new: dict[str, np.ndarray], added: int
) -> dict[str, np.ndarray]:
    """One cutoff's :data:`OUTPUT_COLUMNS` (but ``tenant_id``): the source rows with their history
    columns, then the ``added`` new history candidates (source flags false; null scores for a
    family that could not be fitted)."""
    given = {**_no_history(len(sources["user_id"])), **in_sources, **sources}
    new = {
        "cutoff_date": np.repeat(sources["cutoff_date"][:1], added),
        **dict.fromkeys(SOURCE_FLAGS, np.zeros(added, dtype=bool)),
        "covisit_sessions_long": np.zeros(added, dtype=np.int64),
        **_no_history(added),
        "user_id": np.empty(added, dtype=object),
        "item_id": np.empty(added, dtype=object),
        **new,
    }
    return {name: np.concatenate([given[name], new[name]]) for name in OUTPUT_COLUMNS[1:]}


def _score_block(
    data: Interactions,
    families: dict[str, tuple[Recommender, sp.csr_matrix]],
    rows: np.ndarray,
    pair_keys: np.ndarray,
    per_user: int,
    exclude_seen: bool,
    allowed: np.ndarray,
) -> dict[str, np.ndarray]:
    """The block's scored pairs: each family's top ``per_user`` items of every user of ``rows``
    (ascending), those of them ``allowed`` (catalogued) (``is_history_candidate``), and the given
    pairs (``row * items + column`` keys of those users), with every family's score and rank,
    ascending by ``key``; ``families``: name -> the fitted family and its ``history(data)``. A
    family's scores live only for the block (:mod:`ml.models.recsys.block_scores`: SAR's as its
    positive entries, EASE's on its fitted columns)."""
    n_items, consumed = len(data.items), data.consumed[rows]
    scored = {name: block_scores(m, history[rows], consumed, exclude_seen) for name, (m, history) in families.items()}
    # ranked as recommend() ranks (ties to the lower item index); positive scores only, which rank above the rest
    chosen = [r * n_items + c for r, c in (s.top(per_user, allowed) for s in scored.values())]
    chosen_keys = np.unique(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    pairs = np.searchsorted(rows, pair_keys // n_items) * n_items + pair_keys % n_items  # the block's own rows
    keys = np.union1d(chosen_keys, pairs)  # ascending: rows, then columns
    r, c = np.divmod(keys, n_items)
    out: dict[str, np.ndarray] = {"key": rows[r] * n_items + c, "is_history_candidate": in_sorted(chosen_keys, keys)}
    for name, s in scored.items():
        out[f"{name}_score"], out[f"{name}_rank"] = s.at(r, c)
    return out


def _no_scores(models: dict[str, Recommender]) -> dict[str, np.ndarray]:
    """:func:`_score_block`'s arrays for no pairs."""
    empty = {f"{name}_{what}": np.empty(0) for name in models for what in ("score", "rank")}
    return {"key": np.empty(0, dtype=np.int64), "is_history_candidate": np.empty(0, dtype=bool), **empty}


def _user_history(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Per user row: distinct items interacted with, and whole days since the last consumption."""
    last_age = np.full(len(data.users), np.inf)
    np.minimum.at(last_age, data.user, data.age_days)
    return np.diff(data.seen.indptr).astype(np.int64), np.floor(last_age)
