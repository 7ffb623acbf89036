"""The recommender's competition: every candidate model's top-k lists judged on one holdout
(:mod:`ml.models.ranking_holdout`: the temporal protocol, or the stratified random one where it decides).

Each candidate makes the lists it would have served at the holdout's cutoff T:

- a classic family (:mod:`ml.models.recsys`: popularity, item-kNN, SAR, EASE, ALS), fitted on the whole history
  before T, scores every user by their history before T;
- a LightGBM re-ranker orders the candidates generated at T (the ``ranking_examples`` rows at T); a user without
  candidates gets the cold-start list (the most popular items of the tenant's short window:
  ``int_tenant_windows.short_window_days``, 7 days for a daily platform), as the API answers them.

The same users and relevant items for all, per-user nDCG kept for the gate's paired bootstrap. Where the random
protocol picks the family (``RankingHoldout.families_by``) the re-rankers meet that family on the temporal holdout.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.models import evaluate, recsys
from ml.models.fit import LIGHTGBM, Candidate, predict
from ml.models.kinds.base import ModelKind
from ml.models.ranking_holdout import HEADLINE, RANDOM, RANDOM_HEADLINE, RECENT_DAYS, TEMPORAL, Judged, RankingHoldout
from ml.models.recsys.served import history_events
from ml.models.recsys.tuning import TAG, Tuning, tuned_ease

log = logging.getLogger(__name__)


def families(threads: int = 1, recent_days: int = RECENT_DAYS) -> list[recsys.Recommender]:
    """The classic families every tenant's re-rankers compete with (recent popularity over a week
    and over ``recent_days``, the tenant's short window, where that differs). Their defaults are
    the best of the settings tried in ``benchmarks/quality.py`` (see benchmarks/README.md)."""
    return [
        recsys.Popularity(),
        *(recsys.Popularity(window_days=days) for days in sorted({RECENT_DAYS, recent_days})),
        recsys.ItemKNN(neighbours=100),
        recsys.SAR("jaccard", half_life_days=30.0, neighbours=200),
        recsys.EASE(l2=500.0, threads=threads),
        recsys.ALS(factors=128, l2=100.0, alpha=10.0, iterations=15, threads=threads),
    ]


@dataclass
class FamilyFit:
    """A classic family judged on the holdout, and the seconds its fit took."""

    model: recsys.Recommender
    judged: Judged
    seconds: float
    by_random: Judged | None = None  # where the random protocol picks the family (``families_by``)


def judge_families(
    holdout: RankingHoldout,
    threads: int = 1,
    like: dict[str, recsys.Recommender] | None = None,
    tuning: Tuning | None = None,
) -> list[FamilyFit]:
    """Every classic family fitted on the history before the cutoff and judged (a family that
    cannot fit this tenant, e.g. EASE on a huge catalogue, is left out with a log line). EASE's L2 weight is chosen
    on an inner split of that history (:func:`ml.models.recsys.tuning.tuned_ease`; ``tuning``, the last version's
    choice, reused where the history is much the same), unless ``like`` gives the settings (the temporal holdout's
    fits, judged again by the random protocol: one weight is judged and served)."""
    out = []
    for model in families(threads, holdout.recent_days):
        started = time.perf_counter()
        try:
            if like is not None and model.name in like:
                model = recsys.unfitted(like[model.name])
            elif isinstance(model, recsys.EASE):  # its L2 weight this tenant's own (recsys.tuning), in its fit time
                model = tuned_ease(
                    holdout.history, model.max_items, previous=tuning, threads=threads, protocol=holdout.protocol
                )
            recsys.fitted(model, holdout.history)
            if isinstance(model, recsys.EASE) and model.tuning is not None:  # its weight, recorded once it fitted
                holdout.tuning = model.tuning
        except ValueError as e:
            log.info("%s left out: %s", model.name, e)
            continue
        seconds = time.perf_counter() - started
        out.append(FamilyFit(model, holdout.judge(holdout.family_lists(model)), seconds))
    return out


def tuning_params(holdout: RankingHoldout) -> dict[str, str]:
    """The run param (and version tag) keeping how EASE's weight was chosen for the holdout's history, where it was
    (EASE competed or was left out by the choice; not where the catalogue is above its ``max_items``)."""
    return {TAG: holdout.tuning.tag()} if holdout.tuning is not None else {}


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
    tuning: Tuning | None = None,
) -> list[Candidate]:
    """Judge the LightGBM candidates on the holdout (their metrics replaced by the lists' metrics,
    plus ``candidate_recall``) and add a candidate per classic family. Under the random protocol
    the re-rankers are left out (module docstring), with a log line. ``incumbent``: the champion's
    family, kept where the random protocol picks the family (:func:`choose` meets it there).
    ``tuning``: EASE's weight as the tenant's last version chose it (:func:`judge_families`)."""
    if holdout.protocol == RANDOM:
        if candidates:
            log.info("random protocol: %d re-ranker(s) not judged (point-in-time features)", len(candidates))
        candidates = []
    recall = holdout.candidate_recall() if holdout.protocol == TEMPORAL else float("nan")
    for c in candidates:
        judged = holdout.judge(holdout.reranker_lists(predict(kind, c.booster, holdout.examples, features)))
        c.metrics, c.per_user = judged.metrics | {"candidate_recall": recall}, judged.per_user_ndcg
    fits = judge_families(holdout, threads, tuning=tuning)
    if holdout.families_by is not None:
        fits = _families_by_random(fits, holdout, threads, incumbent)
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
    fits: list[FamilyFit], holdout: RankingHoldout, threads: int, incumbent: str | None = None
) -> list[FamilyFit]:
    """The family best under the random protocol (``holdout.families_by``), popularity lists included
    (``random_ndcg_at_10``; ties to the simpler), the popularity lists and the ``incumbent`` (the champion's
    family), judged on the temporal holdout as the rest. :func:`choose` serves the pick unless it does not beat the
    incumbent by the margin (else a pick ahead by a hair is refused by the gate, the champion never refreshed); the
    rest are a re-ranker's bar. Where the holdout may ``overrule`` the pick, every family is kept (each a
    re-ranker's bar), and where its best family beats the pick beyond chance the temporal holdout decides alone
    (:func:`overrule`). Where the protocols disagree (that family does not lead the pick on both protocols'
    figures) the pick stays, ``holdout.contested`` says why, and :func:`choose_on` decides."""
    random = holdout.families_by
    assert random is not None
    by_random = {f.model.name: f.judged for f in judge_families(random, threads, {f.model.name: f.model for f in fits})}
    judged = [f for f in fits if f.model.name in by_random]  # (a family the random split cannot fit is left out)
    for f in judged:
        f.by_random = by_random[f.model.name]
        f.judged.metrics[RANDOM_HEADLINE] = f.by_random.metrics.get(HEADLINE, float("-inf"))
    best = max(judged, key=lambda f: (f.judged.metrics[RANDOM_HEADLINE], -_simpler(f.model.name)), default=None)
    log.info("family chosen by the random protocol (%d users): %s", len(random.users), best and best.model.name)
    if not holdout.overrule or best is None:
        return [f for f in judged if f.model.name.startswith("popularity") or f is best or f.model.name == incumbent]
    top = max(judged, key=lambda f: (f.judged.metrics[HEADLINE], -_simpler(f.model.name)))
    overrules, why = (False, "") if top is best else overrule(top.judged, best.judged)
    if why:
        log.info(
            "the temporal holdout (%d users) %s the random protocol's %s with %s: %s",
            len(holdout.users), "overrules" if overrules else "may overrule", best.model.name, top.model.name, why,
        )  # fmt: skip
    if not overrules:
        holdout.contested = why and f"{top.model.name} leads {best.model.name} on the temporal holdout: {why}"
        return judged
    holdout.families_by = None
    for f in judged:
        f.by_random = None
        del f.judged.metrics[RANDOM_HEADLINE]
    return fits


def overrule(top: Judged, pick: Judged) -> tuple[bool, str]:
    """Whether the temporal holdout's best family (``top``, each judged there with its ``random_ndcg_at_10``)
    replaces the random protocol's ``pick`` whatever the re-rankers do, and why (``""``: ``top`` does not beat it
    beyond chance).

    ``top`` must beat the pick on the temporal holdout beyond chance (95% paired bootstrap of per-user nDCG@10
    above 0) and lead it on the product of its nDCG@10 under the two protocols (their geometric mean). Where it
    trails there (it leads next week's holdout by less, relatively, than it trails on a random quarter of every
    user's items) the protocols disagree: :func:`choose_on` keeps the pick only as the bar of a re-ranker that
    :func:`choose` serves, else lets ``top`` overrule. On the news site whose readers all turn to the week's new
    stories the week's popular list leads 0.77 to 0.00 on the temporal holdout and trails 0.14 to 0.36 under the
    random protocol: it overrules. On Online Retail's United Kingdom with a quarter of every customer's baskets
    removed at random (benchmarks/README.md, *The random protocol's pick for every tenant*), the 7-day popular list
    led EASE 0.0685 to 0.0549 beyond chance on its temporal holdout, and was served: 0.0381 against EASE's 0.2770 on
    the customers' held-out baskets; the tenant re-ranker (0.0748 on that holdout) is now served there, 0.1255.
    """
    mean, low, high = evaluate.paired_bootstrap(top.per_user_ndcg, pick.per_user_ndcg)
    if low <= 0:
        return False, ""
    (t_top, r_top), (t_pick, r_pick) = ((j.metrics[HEADLINE], j.metrics[RANDOM_HEADLINE]) for j in (top, pick))
    both = f"{t_top:.4f} x {r_top:.4f} against {t_pick:.4f} x {r_pick:.4f} under the temporal and random protocols"
    versus = f"it leads by {HEADLINE} {mean:+.4f} [{low:+.4f}, {high:+.4f}] there"
    if t_top * r_top <= t_pick * r_pick:
        return False, f"{versus}, but not on both protocols' figures: {both}"
    return True, f"{versus}, and on both protocols' figures: {both}"


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


def choose_on(
    holdout: RankingHoldout, candidates: list[Candidate], incumbent: str | None = None, margin: float = 0.0
) -> tuple[Candidate, str]:
    """:func:`choose` on the tenant's holdout. Where the protocols disagree (``holdout.contested``: the temporal
    holdout's best family beats the random protocol's pick there beyond chance, and trails it on both protocols'
    figures) the pick stands only as the bar of a re-ranker that :func:`choose` serves; if it would serve a family,
    the temporal holdout decides (the families' random protocol figures dropped, ``holdout.families_by`` None) and
    :func:`choose` runs again: nothing that loses to a family on the temporal holdout beyond chance is served.
    """
    winner, why = choose(candidates, incumbent, margin)
    if winner.family == LIGHTGBM or not (holdout.contested or holdout.decided):
        return winner, why
    if holdout.contested:  # (else decided at a choice before, among more candidates: ml.models.sanity)
        log.info("no re-ranker is served beside the random protocol's pick: the temporal holdout decides")
        for c in candidates:
            c.metrics.pop(RANDOM_HEADLINE, None)
            c.random_per_user = None
        holdout.families_by, holdout.decided, holdout.contested = None, holdout.contested, ""
        winner, why = choose(candidates, incumbent, margin)
    return winner, f"{why} (the temporal holdout decides, no re-ranker being served: {holdout.decided})"


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


def strongest_popularity(candidates: list[Candidate], holdout: RankingHoldout | None = None) -> dict[str, float]:
    """The metrics of the best popularity list (all time or recent): the run's baseline; the best by
    the random protocol where that protocol picked a small tenant's family (``random_ndcg_at_10``), the best on
    the temporal holdout where that holdout may ``overrule`` the pick (its metrics are the ones reported; its
    ``random_ndcg_at_10`` is then the best popular list's there, what the pick is measured against)."""
    popular = [c for c in candidates if c.family.startswith("popularity")]
    if not popular:
        return {}
    if holdout is None or not holdout.overrule:
        return max(
            popular, key=lambda c: c.metrics.get(RANDOM_HEADLINE, c.metrics.get(HEADLINE, float("-inf")))
        ).metrics
    metrics = dict(max(popular, key=lambda c: c.metrics.get(HEADLINE, float("-inf"))).metrics)
    if by_random := [c.metrics[RANDOM_HEADLINE] for c in popular if RANDOM_HEADLINE in c.metrics]:
        metrics[RANDOM_HEADLINE] = max(by_random)
    return metrics
