"""The recommender's competition: every candidate model's top-k lists judged on one temporal holdout.

The holdout (the temporal protocol of :mod:`ml.models.evaluate`) is the label window after the snapshot's last
labelled cutoff T: every user with an interaction in ``[T, T + window)`` is evaluated, the relevant items are what
they interacted with there (without the items they had already consumed before T when the tenant's seen-items policy
excludes them; a user left with nothing new is not judged). Each candidate makes the lists it would have served at T:

- a classic family (:mod:`ml.models.recsys`: popularity, item-kNN, SAR, EASE, ALS), fitted on the whole history
  before T, scores every user by their history before T;
- a LightGBM re-ranker orders the candidates generated at T (the ``ranking_examples`` rows at T); a user without
  candidates gets the cold-start list (the most popular items of the tenant's short window:
  ``int_tenant_windows.short_window_days``, 7 days for a daily platform), as the API answers them.

The same users and relevant items for all, one :func:`ml.models.evaluate.evaluate_lists`, per-user nDCG kept for
the gate's paired bootstrap.

A tenant whose users come in bursts (a ratings site: dozens of ratings on one day, then rarely back) leaves few
users in any window, and those few are not the users it serves. The **stratified random** protocol over the whole
history (:meth:`RankingHoldout.random_split`: 75/25 of each user's items, seed 42, as the recommenders benchmark)
judges every user instead:

- when the temporal holdout judges fewer than :data:`MIN_JUDGED_SHARE` of the users with history before its cutoff,
  it does not speak for the users the champion serves, and the random protocol decides the whole competition;
- when it judges fewer than :data:`MIN_JUDGED_USERS` users it cannot tell the families apart: the random protocol
  decides the whole competition when no re-ranker competes, else it picks the family (a popularity list or a
  personal one) that competes with the re-rankers on the temporal holdout, where they must also lead every
  popularity list (and the champion's family).

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

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.models import evaluate, recsys
from ml.models.fit import LIGHTGBM, Candidate, predict
from ml.models.kinds.base import ModelKind
from ml.models.recsys.served import history_events

log = logging.getLogger(__name__)

K = evaluate.K
# Recent popularity competes over the last week and over the tenant's short window
# (int_tenant_windows.short_window_days) where longer: a shop whose customers come back every seven weeks may still
# have items whose popularity turns within a week (Online Retail's Christmas stock). The cold-start list counts the
# short window, as the API's does (marts/cold_start_items); a week where a snapshot recorded no windows.
RECENT_DAYS = 7
HEADLINE = f"ndcg_at_{K}"
RANDOM_HEADLINE = f"random_{HEADLINE}"  # a family's headline under the random protocol that picked it


def families(threads: int = 1, recent_days: int = RECENT_DAYS) -> list[recsys.Recommender]:
    """The classic families every tenant's re-rankers compete with (recent popularity over a week
    and over ``recent_days``, the tenant's short window, where that differs). Their defaults are
    the best of the settings tried in ``benchmarks/quality.py`` (see benchmarks/README.md)."""
    return [
        recsys.Popularity(),
        *(recsys.Popularity(window_days=days) for days in sorted({RECENT_DAYS, recent_days})),
        recsys.ItemKNN(neighbours=100),
        recsys.SAR("jaccard", half_life_days=30.0, neighbours=200),
        recsys.EASE(l2=500.0),
        recsys.ALS(factors=128, l2=100.0, alpha=10.0, iterations=15, threads=threads),
    ]


# fewer judged users in the temporal holdout: the random protocol picks the family. Online Retail's backtest
# (benchmarks/holdout_choice.py, benchmarks/README.md): its pick did better on the next window where windows judged
# 4-41 users, as well at 683-1,104 (5 windows); 100 keeps the temporal holdout's say where items turn fast (news).
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
    # a small temporal holdout's helper: the random protocol's holdout over the history before this
    # cutoff, which picks the classic family that competes with the re-rankers here (judged here)
    families_by: RankingHoldout | None = None
    # a random holdout's: the temporal holdout it replaced (too few users, or too small a share of
    # them, to decide), the only one a re-ranker champion can still be judged on (ml.models.gate)
    temporal: RankingHoldout | None = None
    # the tenant chose this protocol (its ``holdout_protocol``), rather than the rule above
    chosen_by_tenant: bool = False
    recent_days: int = RECENT_DAYS  # the tenant's short window: the cold-start list, recent popularity

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
        if before.empty or window.empty:
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
        return cls(cutoff, data, relevant, users, examples, exclude_seen, catalogue, cold, recent_days=recent_days)

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
        train, test = evaluate.stratified_random_split(pairs, ratio, seed)
        if train.empty or test.empty:
            return None
        data = recsys.Interactions.from_events(train, cutoff)
        relevant = test[["user_id", "item_id"]].astype(str).reset_index(drop=True)
        users = np.sort(relevant["user_id"].unique())
        cold = recsys.Popularity(window_days=recent_days).fit(data)
        examples = pd.DataFrame(columns=["user_id", "item_id", "cutoff_date"])
        return cls(
            cutoff, data, relevant, users, examples, exclude_seen, catalogue, cold, RANDOM, recent_days=recent_days
        )

    def judged_share(self) -> float:
        """The share of the users with history before the cutoff that this holdout judges (0..1;
        users first seen in the window are judged but not counted)."""
        if not len(self.history.users):
            return 0.0
        return float(np.isin(self.history.users, self.users).mean())

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
                seen[known] = np.asarray(self.history.seen[rows[known], cols[known]]).ravel() > 0
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


@dataclass
class FamilyFit:
    """A classic family judged on the holdout, and the seconds its fit took."""

    model: recsys.Recommender
    judged: Judged
    seconds: float
    by_random: Judged | None = None  # where the random protocol picks the family (``families_by``)


def judge_families(holdout: RankingHoldout, threads: int = 1) -> list[FamilyFit]:
    """Every classic family fitted on the history before the cutoff and judged (a family that
    cannot fit this tenant, e.g. EASE on a huge catalogue, is left out with a log line)."""
    out = []
    for model in families(threads, holdout.recent_days):
        started = time.perf_counter()
        try:
            recsys.fitted(model, holdout.history)
        except ValueError as e:
            log.info("%s left out: %s", model.name, e)
            continue
        seconds = time.perf_counter() - started
        out.append(FamilyFit(model, holdout.judge(holdout.family_lists(model)), seconds))
    return out


def refit(model: recsys.Recommender, history: pd.DataFrame, as_of: Any) -> recsys.Recommender:
    """The same family and settings fitted on the whole history before ``as_of`` (the serving cutoff):
    what is registered and served once it won the holdout."""
    data = recsys.Interactions.from_events(history_events(history), pd.Timestamp(as_of))
    return recsys.fitted(recsys.unfitted(model), data)


def compete(
    holdout: RankingHoldout,
    candidates: list[Candidate],
    kind: ModelKind,
    features: list[str],
    threads: int = 1,
    incumbent: str | None = None,
) -> list[Candidate]:
    """Judge the LightGBM candidates on the holdout (their metrics replaced by the lists' metrics,
    plus ``candidate_recall``) and add a candidate per classic family. Under the random protocol
    the re-rankers are left out (module docstring), with a log line. ``incumbent``: the champion's
    family, kept where the random protocol picks the family (:func:`choose` meets it there)."""
    if holdout.protocol == RANDOM:
        if candidates:
            log.info("random protocol: %d re-ranker(s) not judged (point-in-time features)", len(candidates))
        candidates = []
    recall = holdout.candidate_recall() if holdout.protocol == TEMPORAL else float("nan")
    for c in candidates:
        judged = holdout.judge(holdout.reranker_lists(predict(kind, c.booster, holdout.examples, features)))
        c.metrics, c.per_user = judged.metrics | {"candidate_recall": recall}, judged.per_user_ndcg
    fits = judge_families(holdout, threads)
    if holdout.families_by is not None:
        fits = _families_by_random(fits, holdout.families_by, threads, incumbent)
    for f in fits:
        candidates.append(
            Candidate(
                "tenant",
                None,
                metrics=f.judged.metrics,
                seconds=f.seconds,
                family=f.model.name,
                recommender=f.model,
                per_user=f.judged.per_user_ndcg,
                random_per_user=f.by_random.per_user_ndcg if f.by_random is not None else None,
            )
        )
    return candidates


def _families_by_random(
    fits: list[FamilyFit], random: RankingHoldout, threads: int, incumbent: str | None = None
) -> list[FamilyFit]:
    """The family best under the random protocol, popularity lists included (``random_ndcg_at_10``; ties to the
    simpler), the popularity lists and the ``incumbent`` (the champion's family), judged on the temporal holdout as
    the rest. :func:`choose` serves the pick unless it does not beat the incumbent by the margin (else a pick ahead
    by a hair is refused by the gate, the champion never refreshed); the rest are a re-ranker's bar."""
    by_random = {f.model.name: f.judged for f in judge_families(random, threads)}
    judged = [f for f in fits if f.model.name in by_random]  # (a family the random split cannot fit is left out)
    for f in judged:
        f.by_random = by_random[f.model.name]
        f.judged.metrics[RANDOM_HEADLINE] = f.by_random.metrics.get(HEADLINE, float("-inf"))
    best = max(judged, key=lambda f: (f.judged.metrics[RANDOM_HEADLINE], -_simpler(f.model.name)), default=None)
    log.info("family chosen by the random protocol (%d users): %s", len(random.users), best and best.model.name)
    return [f for f in judged if f.model.name.startswith("popularity") or f is best or f.model.name == incumbent]


def _simpler(family: str) -> int:
    """A family's place in the ties' order, simpler first (recent popularity's name carries its window)."""
    order = ["popularity", "popularity_", "item_knn", "sar", "ease"]
    family = "popularity_" if family.startswith("popularity_") else family
    return order.index(family) if family in order else len(order)


def choose(candidates: list[Candidate], incumbent: str | None = None, margin: float = 0.0) -> tuple[Candidate, str]:
    """The candidate to register, and why.

    The best nDCG@k wins (ties: a tenant's own model over the global one, then the simpler
    family). A LightGBM re-ranker must beat the strongest classic family by more than chance: when
    the 95% paired-bootstrap interval of its per-user nDCG@k minus the family's reaches 0 or below,
    the family is chosen (cheaper to train and serve, as good as far as the holdout can tell).
    ``incumbent``, the classic family serving as champion, is kept (refitted on the new data)
    unless the winner beats it by the gate's rule (interval's lower end >= ``margin``): otherwise a
    different family that wins by a hair would be refused by the gate and the champion never refreshed.
    """
    best, why = _best(candidates)
    mine = [c for c in candidates if incumbent not in (None, LIGHTGBM) and c.family == incumbent]
    if not mine or best.family == incumbent:
        return best, why
    paired = [(c.random_per_user if best.random_per_user is not None else c.per_user) for c in (best, mine[0])]
    assert paired[0] is not None and paired[1] is not None  # (the protocol that picked the family judges them)
    mean, low, high = evaluate.paired_bootstrap(paired[0], paired[1])
    if low >= margin:
        return best, why
    versus = f"{HEADLINE} {mean:+.4f} [{low:+.4f}, {high:+.4f}]"
    return mine[0], f"{incumbent}, the champion's family, refitted ({best.label} is not better by the margin: {versus})"


def _best(candidates: list[Candidate]) -> tuple[Candidate, str]:
    """The best candidate (:func:`choose`): the strongest family (the random protocol's pick where it picked
    one: ``random_ndcg_at_10``), unless a re-ranker leads every family and beats the strongest beyond chance."""

    def key(c: Candidate, by: str = HEADLINE) -> tuple[float, bool, int]:
        return c.metrics.get(by, c.metrics.get(HEADLINE, float("-inf"))), c.trained_on != "global", -_simpler(c.family)

    families_ = [c for c in candidates if c.family != LIGHTGBM]
    rerankers = [c for c in candidates if c.family == LIGHTGBM]
    strongest = max(families_, key=lambda c: key(c, RANDOM_HEADLINE), default=None)
    best = max(rerankers, key=key, default=None)
    if best is None or strongest is None or key(best) <= max(key(c) for c in families_):
        winner = strongest or max(candidates, key=key)
        temporal, random = winner.metrics.get(HEADLINE, float("nan")), winner.metrics.get(RANDOM_HEADLINE)
        if random is None:
            return winner, f"{winner.label}: best {HEADLINE} {temporal:.4f}"
        return winner, f"{winner.label}: best by the random protocol, {HEADLINE} {random:.4f} (temporal {temporal:.4f})"
    assert best.per_user is not None and strongest.per_user is not None
    mean, low, high = evaluate.paired_bootstrap(best.per_user, strongest.per_user)
    versus = f"{best.label} vs {strongest.label}: {HEADLINE} {mean:+.4f} [{low:+.4f}, {high:+.4f}]"
    if low <= 0:
        return strongest, f"{strongest.label} (the re-ranker is not better beyond chance: {versus})"
    return best, f"{best.label} ({versus})"


def strongest_popularity(candidates: list[Candidate]) -> dict[str, float]:
    """The metrics of the best popularity list (all time or recent): the run's baseline; the best by
    the random protocol where that protocol picked the family (``random_ndcg_at_10``)."""
    popular = [c for c in candidates if c.family.startswith("popularity")]
    if not popular:
        return {}
    return max(popular, key=lambda c: c.metrics.get(RANDOM_HEADLINE, c.metrics.get(HEADLINE, float("-inf")))).metrics
