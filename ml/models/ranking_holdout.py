"""The recommender competition's holdouts: the temporal one, and the stratified random one where it decides.

The holdout (the temporal protocol of :mod:`ml.models.evaluate`) is the label window after the snapshot's last
labelled cutoff T: every user with an interaction in ``[T, T + window)`` is evaluated, the relevant items are what
they interacted with there (positively: an item rated below the tenant's ``min_rating`` is consumed, not relevant;
without the items they had already consumed before T when the tenant's seen-items policy excludes them; a user left
with nothing new is not judged). Every candidate of :mod:`ml.models.ranking` makes the
lists it would have served at T for the same users and relevant items: one :func:`ml.models.evaluate.evaluate_lists`,
per-user nDCG kept for the gate's paired bootstrap.

A tenant whose users come in bursts (a ratings site: dozens of ratings on one day, then rarely back) leaves few
users in any window, and those few are not the users it serves. The **stratified random** protocol over the whole
history (:meth:`RankingHoldout.random_split`: 75/25 of each user's items, seed 42, as the recommenders benchmark)
judges every user instead:

- when the temporal holdout judges fewer than :data:`MIN_JUDGED_SHARE` of the users with history before its cutoff,
  it does not speak for the users the champion serves, and the random protocol decides the whole competition;
- when it judges fewer than :data:`MIN_JUDGED_USERS` users it cannot tell the families apart: the random protocol
  decides the whole competition when no re-ranker competes, else it picks the family (a popularity list or a
  personal one) that competes with the re-rankers on the temporal holdout, where they must also lead every
  popularity list (and the champion's family);
- when it judges more, the random protocol's pick (over the history before the holdout's cutoff) is still the
  strongest family unless the temporal holdout's best family beats it there beyond chance
  (:attr:`RankingHoldout.overrule`; where that family trails the pick on the product of its figures under both
  protocols, the pick stands only as the bar of a re-ranker that is served: :func:`ml.models.ranking.overrule`,
  :func:`ml.models.ranking.choose_on`); the re-rankers must lead every family on the temporal holdout and beat that one
  beyond chance. Backtested on Online Retail (benchmarks/README.md, *The random protocol's pick for every tenant*):
  on the United Kingdom's five windows the pick was the next window's best family every time, the temporal
  holdout's own best three times in five.

That is a tenant's ``holdout_protocol`` ``auto`` (the default), for a tenant whose seen-items policy is ``exclude``:
the random split holds out only items new to a user, so under ``allow`` (repeats served) ``auto`` is temporal. A
tenant may choose instead: ``temporal`` (what its users take next: a shop, a news site) or ``random`` (what else a
user takes, whenever: a catalogue browsed at leisure). On the Online Retail shop the two disagree: the re-ranker
leads on next month's purchases, EASE on a random quarter of each customer's baskets. A re-ranker cannot be judged
by the random protocol (its features are point in time, a random split of the history is not), so it is not served
where that protocol decides: on a MovieLens-100k-shaped tenant one that won a 69-user temporal holdout scored
nDCG@10 0.23 against EASE's 0.59 on a random quarter of every user's ratings (benchmarks/README.md, both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.models import evaluate, recsys
from ml.models.recsys.served import history_events

K = evaluate.K
# Recent popularity competes over the last week and over the tenant's short window
# (int_tenant_windows.short_window_days) where longer: a shop whose customers come back every seven weeks may still
# have items whose popularity turns within a week (Online Retail's Christmas stock). The cold-start list counts the
# short window, as the API's does (marts/cold_start_items); a week where a snapshot recorded no windows.
RECENT_DAYS = 7
HEADLINE = f"ndcg_at_{K}"
RANDOM_HEADLINE = f"random_{HEADLINE}"  # a family's headline under the random protocol that picked it


# fewer judged users in the temporal holdout: the random protocol's pick stands; from this many on, the temporal
# holdout's best family replaces it where it beats it there beyond chance. Online Retail's backtest
# (benchmarks/holdout_choice.py, benchmarks/README.md): the pick did better on the next window where windows judged
# 2-39 users (letting the window overrule it cost a little there), and was the best on all five windows of
# 683-1,104; the overrule keeps the temporal holdout's say where items turn fast (news).
MIN_JUDGED_USERS = 100
# fewer of the users with history judged by the temporal holdout: it does not speak for the users
# served (a ratings tenant: 7%; the real shop's countries with their 28-day window: 29-39%)
MIN_JUDGED_SHARE = 0.2
AUTO, TEMPORAL, RANDOM = "auto", "temporal", "random"  # a tenant's holdout_protocol (ml.core.tenants)


@dataclass
class Judged:
    """One candidate on the holdout: its metrics and each judged user's nDCG@k (users in holdout order)."""

    metrics: dict[str, float]
    per_user_ndcg: np.ndarray


@dataclass
class RankingHoldout:
    """The users, relevant items and history of one tenant's temporal holdout (module docstring)."""

    cutoff: pd.Timestamp
    history: recsys.Interactions  # everything before the cutoff
    relevant: pd.DataFrame  # user_id, item_id
    users: np.ndarray  # the judged users, sorted
    examples: pd.DataFrame  # the re-rankers' candidates at the cutoff (ranking_examples rows)
    exclude_seen: bool
    catalogue: int | None
    cold_start: recsys.Popularity  # recent popularity before the cutoff: users without candidates
    protocol: str = TEMPORAL
    # a temporal holdout's helper: the random protocol's holdout over the history before this cutoff,
    # which picks the classic family that competes with the re-rankers here (judged here)
    families_by: RankingHoldout | None = None
    # a random holdout's: the temporal holdout it replaced (too few users, or too small a share of
    # them, to decide), the only one a re-ranker champion can still be judged on (ml.models.gate)
    temporal: RankingHoldout | None = None
    # the tenant chose this protocol (its ``holdout_protocol``), rather than the rule above
    chosen_by_tenant: bool = False
    # with ``families_by``: this holdout judges enough users that its best family replaces the random protocol's
    # pick where it beats the pick beyond chance (then ``families_by`` is dropped: the temporal holdout decides)
    overrule: bool = False
    # with ``overrule``: why the temporal holdout's best family, ahead of the pick there beyond chance, did not replace
    # it (the protocols disagree: ml.models.ranking.overrule); ``choose_on`` lets it unless a re-ranker is served
    contested: str = ""
    decided: str = ""  # ``contested`` once ``choose_on`` let the temporal holdout decide (a choice made again says so)
    recent_days: int = RECENT_DAYS  # the tenant's short window: the cold-start list, recent popularity
    tuning: Any = None  # EASE's weight as chosen for ``history`` (ml.models.recsys.tuning.Tuning), once judged
    # user_id, item_id pairs consumed before the cutoff on items outside ``history``'s catalogue (nobody liked them
    # before it: a rating below the tenant's min_rating), which a re-ranker's SQL candidates may still hold
    consumed_outside: pd.DataFrame | None = None

    @classmethod
    def build(
        cls,
        history: pd.DataFrame,
        examples: pd.DataFrame,
        window_days: int,
        exclude_seen: bool = True,
        catalogue: int | None = None,
        recent_days: int = RECENT_DAYS,
    ) -> RankingHoldout | None:
        """From a snapshot's ``interaction_history`` rows and its ``ranking_examples`` rows at the
        last labelled cutoff. None when there is nothing to judge (no cutoff, no history before it,
        or no user with a relevant item)."""
        if examples.empty or history.empty:
            return None
        cutoff = pd.Timestamp(examples["cutoff_date"].max()).tz_localize("UTC")
        events = history_events(history)
        before = events[events["event_at"] < cutoff]
        window = events[(events["event_at"] >= cutoff) & (events["event_at"] < cutoff + pd.Timedelta(days=window_days))]
        window = window[window["interactions"] > 0]  # relevant: positive interactions (consumed ones stay seen)
        if not (before["interactions"] > 0).any() or window.empty:
            return None
        data = recsys.Interactions.from_events(before, cutoff)
        relevant = window[["user_id", "item_id"]].astype(str).drop_duplicates()
        if exclude_seen:
            seen = before[["user_id", "item_id"]].drop_duplicates()
            relevant = relevant.merge(seen, how="left", indicator=True)
            relevant = relevant[relevant["_merge"] == "left_only"].drop(columns="_merge")
        if relevant.empty:
            return None
        users = np.sort(relevant["user_id"].astype(str).unique())
        cold = recsys.Popularity(window_days=recent_days).fit(data)
        return cls(
            cutoff, data, relevant, users, examples, exclude_seen, catalogue, cold, recent_days=recent_days,
            consumed_outside=_outside(before, data),
        )  # fmt: skip

    @classmethod
    def random_split(
        cls,
        history: pd.DataFrame,
        as_of: Any,
        exclude_seen: bool = True,
        catalogue: int | None = None,
        ratio: float = 0.75,
        seed: int = 42,
        recent_days: int = RECENT_DAYS,
    ) -> RankingHoldout | None:
        """The stratified random protocol on the whole history before ``as_of``: each user's
        distinct items split ``ratio``/rest (:func:`ml.models.evaluate.stratified_random_split`),
        the families fitted on the first part (each pair at its last interaction, for SAR's decay)
        and judged on the rest. No re-ranker candidates (``examples`` is empty). None when no user
        has an item to hold out."""
        cutoff = pd.Timestamp(as_of)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        events = history_events(history)
        events = events[events["event_at"] < cutoff]
        pairs = events.groupby(["user_id", "item_id"], as_index=False).agg(
            event_at=("event_at", "max"), interactions=("interactions", "sum")
        )
        train, test = evaluate.positives_split(pairs, ratio, seed)
        if test.empty or not (train["interactions"] > 0).any():
            return None
        data = recsys.Interactions.from_events(train, cutoff)
        relevant = test[["user_id", "item_id"]].astype(str).reset_index(drop=True)
        users = np.sort(relevant["user_id"].unique())
        cold = recsys.Popularity(window_days=recent_days).fit(data)
        examples = pd.DataFrame(columns=["user_id", "item_id", "cutoff_date"])
        return cls(
            cutoff, data, relevant, users, examples, exclude_seen, catalogue, cold, RANDOM, recent_days=recent_days,
            consumed_outside=_outside(train, data),
        )  # fmt: skip

    def judged_share(self) -> float:
        """The share of the users with history (a positive interaction) before the cutoff that this holdout judges
        (0..1; users first seen in the window are judged but not counted)."""
        with_history = self.history.users[self.history.has_history]
        # pandas hashes the ids: numpy's isin compares object arrays pairwise (judged users x users with history)
        return float(pd.Series(with_history).isin(self.users).mean()) if len(with_history) else 0.0

    def judge(self, lists: pd.DataFrame) -> Judged:
        """Metrics of top-k lists (``user_id, item_id, rank``) on this holdout, with a 95% bootstrap
        interval on nDCG@k (``ndcg_at_10_low`` / ``_high``) and the number of judged ``users``."""
        ev = evaluate.evaluate_lists(lists, self.relevant, K, self.catalogue or len(self.history.items))
        metrics = ev.metrics()
        ndcg = ev.per_user["ndcg"].to_numpy()
        metrics[f"{HEADLINE}_low"], metrics[f"{HEADLINE}_high"] = evaluate.bootstrap_interval(ndcg)
        return Judged(metrics, ndcg)

    def family_lists(self, model: recsys.Recommender) -> pd.DataFrame:
        """What a family fitted on the history before the cutoff serves the judged users."""
        return recsys.recommend(
            model, self.history, self.users, K, self.exclude_seen, fallback=self.cold_start.item_scores
        )

    def reranker_lists(self, scores: np.ndarray) -> pd.DataFrame:
        """A re-ranker's lists: its scores of the candidates at the cutoff, best first (ties by item
        id), consumed items left out under the exclude policy; cold start for users without candidates."""
        ex = pd.DataFrame(
            {
                "user_id": self.examples["user_id"].astype(str).to_numpy(),
                "item_id": self.examples["item_id"].astype(str).to_numpy(),
                "score": np.asarray(scores, dtype=np.float64),
            }
        )
        ex = ex[ex["user_id"].isin(self.users)]
        if self.exclude_seen and len(ex):
            rows, cols = self.history.rows(ex["user_id"].to_numpy()), self.history.columns(ex["item_id"].to_numpy())
            known = (rows >= 0) & (cols >= 0)
            seen = np.zeros(len(ex), dtype=bool)
            if known.any():  # (scipy cannot index a sparse matrix with empty arrays)
                seen[known] = np.asarray(self.history.consumed[rows[known], cols[known]]).ravel() > 0
            if self.consumed_outside is not None and len(self.consumed_outside) and (cols < 0).any():
                outside = ex[cols < 0].reset_index().merge(self.consumed_outside, on=["user_id", "item_id"])
                seen[ex.index.get_indexer(outside["index"])] = True
            ex = ex[~seen]
        ex = ex.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="mergesort")
        ex["rank"] = ex.groupby("user_id", sort=False).cumcount() + 1
        lists = ex[ex["rank"] <= K][["user_id", "item_id", "rank", "score"]]
        missing = np.setdiff1d(self.users, lists["user_id"].unique())
        if len(missing):
            cold = self.cold_start
            lists = pd.concat(
                [lists, recsys.recommend(cold, self.history, missing, K, self.exclude_seen, fallback=cold.item_scores)],
                ignore_index=True,
            )
        return lists

    def candidate_recall(self) -> float:
        """Relevant (user, item) pairs among the re-rankers' candidates at the cutoff, over all relevant pairs."""
        found = self.relevant.merge(
            self.examples[["user_id", "item_id"]].astype(str).drop_duplicates(), on=["user_id", "item_id"]
        )
        return len(found) / len(self.relevant)


def _outside(events: pd.DataFrame, data: recsys.Interactions) -> pd.DataFrame:
    """The ``user_id, item_id`` pairs of ``events`` on items outside ``data``'s catalogue (consumed, never liked)."""
    pairs = events[["user_id", "item_id"]].astype(str)
    return pairs[data.columns(pairs["item_id"].to_numpy()) < 0].drop_duplicates()
