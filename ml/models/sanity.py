"""What must hold before any version may serve, whatever its metrics: the gate's sanity checks
(:mod:`ml.models.gate`). A learnt model's predictions on the holdout are finite and not constant, it
scores one request within the latency budget and takes the champion's inputs; a classic family scores
one user (the busiest judged one) finitely and within the budget. Training leaves a winner that would fail them out
of its choice (:func:`choose_servable`), so the next best serves.

Latency is the model's own cost: the CPU time of one request on one thread (:func:`cpu_ms`), which a busy machine
does not change, so which model serves does not depend on what else ran beside the training."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml.core.settings import TrainSettings
from ml.models import recsys
from ml.models.fit import Candidate, predict
from ml.models.kinds.base import ModelKind

log = logging.getLogger(__name__)


def sanity_problems(
    kind: ModelKind,
    booster: Any,
    holdout: pd.DataFrame,
    features: list[str],
    policy: TrainSettings,
    champion_features: list[str] | None,
    may_be_constant: bool = False,
) -> list[str]:
    """Reasons a model must not serve, whatever its metrics (empty when it may). ``may_be_constant``:
    a kind's baseline made servable, whose table was checked strictly increasing when fitted
    (:mod:`ml.models.servable_baseline`): equal predictions are the holdout's equal values, as
    when every young tenant's user had no session in the last window."""
    problems = []
    if champion_features is not None and champion_features != features:
        added = sorted(set(features) - set(champion_features))
        removed = sorted(set(champion_features) - set(features))
        problems.append(
            f"input schema changed (added {added}, removed {removed}); promote by hand once clients are ready"
        )
    if holdout.empty:
        return problems
    p = predict(kind, booster, holdout, features)
    if not np.all(np.isfinite(p)):
        problems.append(f"{int((~np.isfinite(p)).sum())} non-finite predictions on the holdout")
    elif float(np.std(p)) < 1e-9 and not may_be_constant:
        problems.append("constant predictions on the holdout")
    ms = request_latency_ms(kind, booster, holdout, features)
    if ms > policy.latency_budget_ms:
        problems.append(f"scoring one request takes {ms:.2f} ms, over the {policy.latency_budget_ms} ms budget")
    return problems


def request_latency_ms(
    kind: ModelKind, booster: Any, holdout: pd.DataFrame, features: list[str], tries: int = 30
) -> float:
    """Median CPU milliseconds to score one request's rows (one query's candidates, or 100 users): :func:`cpu_ms`."""
    if kind.group:
        first_q = holdout[kind.group].iloc[0]
        rows = kind.matrix(holdout[holdout[kind.group] == first_q], features)
    else:
        rows = kind.matrix(holdout.head(100), features)
    return cpu_ms(lambda: booster.predict(rows, num_threads=1), tries)


def cpu_ms(call: Callable[[], Any], tries: int = 30) -> float:
    """Median milliseconds of CPU time this thread spends in ``call()`` over ``tries`` calls, BLAS and OpenMP held
    to this one thread (``threadpoolctl``), so every cycle of the work is counted and no other process's are.

    Wall time was not the model's cost: on a machine busy with other work a one-user ALS score (~1 ms alone) took a
    median 136 ms of wall time, over the 10 ms budget, and training served the runner-up (a shop's clickstream,
    benchmarks/README.md, *A shop's clickstream*).
    """
    times = []
    with threadpool_limits(1):
        for _ in range(tries):
            t = time.thread_time()
            call()
            times.append(time.thread_time() - t)
    return float(np.median(times) * 1000)


def family_problems(challenger: Candidate, ranking: Any, policy: TrainSettings) -> list[str]:
    """A classic family's sanity: it made lists for the judged users, quickly enough for one request."""
    if ranking is None:
        return ["a classic family needs the competition holdout"]
    model = challenger.recommender
    history = model.history(recsys.Interactions.from_events(_one_user(ranking), ranking.cutoff, items=model.items))
    scores = model.score(history)
    problems = []
    if not np.all(np.isfinite(scores)):
        problems.append("non-finite scores for a user")
    ms = cpu_ms(lambda: model.score(history))
    if ms > policy.latency_budget_ms:
        problems.append(f"scoring one user takes {ms:.2f} ms, over the {policy.latency_budget_ms} ms budget")
    return problems


def refusal(
    kind: ModelKind, ranking: Any, holdout: pd.DataFrame, features: list[str], policy: TrainSettings
) -> Callable[[Candidate], list[str]]:
    """The gate's sanity check of one candidate, before the choice (:func:`choose_servable`): a classic family's
    :func:`family_problems`; a learnt model's :func:`sanity_problems` on its judged booster (the one refitted for
    serving, :mod:`ml.models.refit`, is checked again by the gate). The input schema is not checked here: a changed
    schema is promoted by hand, not a reason to serve another model."""

    def problems(c: Candidate) -> list[str]:
        if c.booster is None:
            return family_problems(c, ranking, policy)
        return sanity_problems(kind, c.booster, holdout, features, policy, None, c.family == kind.baseline_name)

    return problems


def choose_servable(
    choose: Callable[[list[Candidate]], tuple[Candidate, str]],
    candidates: list[Candidate],
    problems: Callable[[Candidate], list[str]],
) -> tuple[Candidate, str]:
    """``choose``'s winner among ``candidates`` that the gate's sanity check (``problems``, :func:`refusal`) would
    not refuse: a winner it would refuse (a one-user score over the latency budget, non-finite or constant scores)
    is left out and the choice made again among the rest. Returns (winner, why); ``why`` ends naming those left out
    and their problems. The gate would refuse such a winner, leaving a tenant without a first
    champion (the cold-start list for every user: a 40,000-item tenant's ALS, benchmarks/README.md) where the next
    best can serve. The last candidate is returned whatever its problems: the gate refuses it then."""
    refused = []
    while True:
        winner, why = choose(candidates)
        wrong = problems(winner) if len(candidates) > 1 else []
        if not wrong:
            break
        refused.append(f"{winner.label}: {', '.join(wrong)}")
        candidates = [c for c in candidates if c is not winner]
    if refused:
        said = "; ".join(refused)
        log.warning("left out of the competition, as the gate would refuse them: %s", said)
        why += f" (left out, as the gate would refuse them: {said})"
    return winner, why


def _one_user(ranking: Any) -> pd.DataFrame:
    """The busiest judged user's history before the cutoff, as events (the latency check's request)."""
    h = ranking.history
    row = int(np.argmax(np.asarray(h.counts.sum(axis=1)).ravel()))
    mine = h.user == row
    return pd.DataFrame(
        {
            "user_id": h.users[row],
            "item_id": h.items[h.item[mine]],
            "event_at": ranking.cutoff - pd.to_timedelta(h.age_days[mine], unit="D"),
            "interactions": h.weight[mine],  # (0: consumed only)
        }
    )
