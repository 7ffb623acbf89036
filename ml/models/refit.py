"""Refitting the winner for serving on the newest labelled cutoffs.

A kind's competition judges candidates trained on cutoffs whose label windows end by the holdout's
cutoff (purged: :func:`ml.models.fit.time_holdout`). With a 28-day label window and a week between
cutoffs, the newest of them is eight weeks before the serving cutoff. Once the holdout has chosen a
LightGBM recipe (tenant-only, fine-tuned from the global model, the global model itself), the
recipe is fitted again on as many cutoffs as it trained on, from the holdout's back (the newest
whose label windows are complete; dbt labels them, macro ``label_complete``), and that refit is
what the registry serves. It is the last step of model selection as scikit-learn's
``GridSearchCV(refit=True)`` takes it (the chosen configuration fitted on all the data), and what
the classic families already do (:func:`ml.models.ranking.refit`: the whole history).

The gate still judges the holdout-free booster. The run keeps it (``judged/model.txt``, version tag
``judged_model``), and a champion re-scored on a later holdout is read from it
(:func:`ml.models.champion.load_judged_booster`): its refit learned labels that reach into the newer
holdout's window. What the refit gains the holdout cannot tell (the refit has seen it);
``benchmarks/quality.py --product-forward`` measures it on days after the product's data end.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from ml.core.settings import Settings, TrainSettings
from ml.models import ranking
from ml.models.champion import load_booster
from ml.models.fit import LIGHTGBM, Candidate, fit, trainable
from ml.models.kinds.base import ModelKind

log = logging.getLogger(__name__)


def refit_rows(frame: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` (a kind's examples, ``cutoff_date`` a column) at as many cutoffs as
    ``train`` has, the newest at or before the holdout's (the holdout's included), one step apart.
    Empty without a holdout or training rows, and where those cutoffs are not one step apart (the
    step: the closest two cutoffs of ``frame``): a snapshot from before dbt labelled the refit
    cutoffs holds the holdout and the purged training cutoffs only, weeks apart."""
    if holdout.empty or train.empty:
        return frame.iloc[:0]
    cutoffs = pd.to_datetime(frame["cutoff_date"])
    last = pd.to_datetime(holdout["cutoff_date"]).max()
    count = pd.to_datetime(train["cutoff_date"]).nunique()
    every = np.sort(cutoffs.unique())
    newest = every[every <= last][-count:]
    if len(newest) > 1 and np.diff(newest).max() > np.diff(every).min():
        return frame.iloc[:0]
    return frame[cutoffs.isin(newest).to_numpy()]


def cutoff_span(frame: pd.DataFrame) -> str:
    """``first..last`` cutoff dates of ``frame`` (``""`` when empty): how runs and versions name them."""
    if frame.empty:
        return ""
    dates = pd.to_datetime(frame["cutoff_date"])
    return f"{dates.min().date()}..{dates.max().date()}"


def refit(
    kind: ModelKind,
    winner: Candidate,
    rows: pd.DataFrame,
    train: pd.DataFrame,
    features: list[str],
    policy: TrainSettings,
    init_model: Any = None,
    num_threads: int | None = None,
) -> None:
    """Fit ``winner``'s recipe again on ``rows`` (:func:`refit_rows`) and set it as ``winner.served``
    (with ``refit_cutoffs``, ``refit_rows``, counted as ``rows_train`` is, before queries without a
    positive are left out, and the seconds it took); ``init_model``: the booster a
    fine-tuned recipe continues from, the global model that serves now.

    Only with ``policy.refit`` (``TENANTFLOW_TRAIN_REFIT``, on by default), and only a LightGBM
    model trained here (``tenant``, ``fine_tuned``, a region's ``global``; not a classic family,
    refitted on its whole history by :func:`ml.models.ranking.refit`, nor a global model a tenant
    borrows, refitted by its own training). Where ``rows`` do not reach past the cutoffs of
    ``train`` or hold fewer than the kind's minimum positives, the judged booster serves, with a log
    line saying why.
    """
    if not policy.refit or winner.family != LIGHTGBM or winner.model_uri is not None or winner.booster is None:
        return
    usable = trainable(kind, rows)
    newer = not usable.empty and not train.empty and usable["cutoff_date"].max() > train["cutoff_date"].max()
    if not newer or kind.positives(usable) < kind.min_train_positives:
        why = "no newer labelled cutoffs, one step apart," if not newer else f"{kind.positives(usable)} positives"
        log.info("%s %s: served as judged (%s to refit on)", kind.name, winner.label, why)
        return
    started = time.perf_counter()
    winner.served = fit(kind, usable, features, policy, init_model=init_model, num_threads=num_threads)
    winner.seconds += time.perf_counter() - started
    winner.refit_cutoffs, winner.refit_rows = cutoff_span(rows), len(rows)


def for_serving(
    kind: ModelKind,
    winner: Candidate,
    g: Any,
    history: pd.DataFrame | None,
    serving_cutoff: Any,
    split_: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    features: list[str],
    policy: TrainSettings,
    settings: Settings,
) -> None:
    """The winner's recipe fitted again on the newest data for serving: a classic family on the whole
    ``history`` before the serving cutoff (:func:`ml.models.ranking.refit`); a learnt model the tenant
    trained on the newest labelled cutoffs of its ``(examples, training rows, holdout)``
    (:func:`refit`), a fine-tuned one continuing from the global model ``g`` that serves
    now. A global model the tenant borrows is refitted by its own training; a servable baseline
    learns nothing to refit."""
    examples, train, holdout = split_
    if winner.recommender is not None:
        winner.recommender = ranking.refit(winner.recommender, history, serving_cutoff)
    elif policy.refit:  # (refit itself leaves out what it does not refit)
        init = load_booster(g.name, str(g.version), settings) if winner.trained_on == "fine_tuned" else None
        refit(kind, winner, refit_rows(examples, train, holdout), train, features, policy, init)
