"""Fitting and scoring LightGBM models of any kind on a tenant's snapshot: the learning itself.

Every fit is deterministic for a snapshot and seed (``deterministic``, ``force_row_wise``, a fixed
thread count), so retraining on the same snapshot reproduces the same predictions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.core.settings import TrainSettings
from ml.data.snapshots import Snapshot
from ml.models.kinds.base import ModelKind

LIGHTGBM = "lightgbm"


@dataclass
class Candidate:
    """One trained (or borrowed) model and how it did on the tenant's holdout.

    ``family`` is ``lightgbm`` (``booster`` set) or a classic recommender family
    (:mod:`ml.models.recsys`, ``recommender`` set); ``per_user`` holds each judged user's headline
    on the recommender's holdout (:mod:`ml.models.ranking`), what the gate's paired bootstrap reads.
    """

    trained_on: str
    booster: Any  # lightgbm.Booster, or None for a classic family
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None  # set when the model already lives in MLflow (the global one)
    global_version: str | None = None
    seconds: float = 0.0
    snapshot_id: str | None = None
    family: str = LIGHTGBM
    recommender: Any = None  # ml.models.recsys.Recommender
    per_user: np.ndarray | None = None
    # a family's on the random protocol's holdout where that protocol picked the family (ml.models.ranking's
    # ``families_by``): what family against family reads there
    random_per_user: np.ndarray | None = None
    # the booster refitted for serving on the newest labelled cutoffs (ml.models.refit); None: the
    # judged ``booster`` serves. ``judged_model``: a borrowed global version that keeps its judged one
    served: Any = None
    refit_cutoffs: str = ""
    refit_rows: int = 0
    judged_model: bool = False
    # a borrowed global version's: the day it learnt this tenant's labels until (ml.models.champion)
    learnt_until: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How runs name it: ``global``/``fine_tuned``/``tenant`` for LightGBM, else the family
        (``global.<family>``: a global model's, as a young tenant's servable baseline meets it)."""
        if self.family == LIGHTGBM:
            return self.trained_on
        return f"global.{self.family}" if self.trained_on == "global" else self.family

    @property
    def described(self) -> str:
        """How the gate's reasons name it, as ``status`` shows a version: ``challenger (lightgbm, tenant)``."""
        from ml.models.champion import version_label

        return f"challenger ({version_label(self.family, self.trained_on)})"


def feature_names(snap: Snapshot, kind: ModelKind) -> list[str]:
    """The kind's input columns, as its training mart's yml declared them when the snapshot was taken."""
    return [f["name"] for f in snap.features[kind.mart]]


def time_holdout(frame: pd.DataFrame, label_days: int, latest: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows) of a kind's examples (one tenant's, ``cutoff_date`` a column),
    split in time.

    The holdout is the last labelled cutoff (at or before ``latest``, when given: a longer label
    window needs an earlier cutoff). Training takes the earlier cutoffs whose label window of
    ``label_days`` days ends by the holdout's cutoff: a cutoff whose labels reach into the holdout's
    window has learned part of what the holdout judges, which favours a fresh challenger over the
    champion. That is purging (López de Prado, *Advances in Financial Machine Learning*, 2018,
    section 7.4.1). dbt labels the holdout, these purged cutoffs and the newer ones the winner is
    refitted on for serving (``int_feature_cutoffs``, :mod:`ml.models.refit`), which this leaves
    out, as it leaves out cutoffs later than the holdout.
    """
    if frame.empty:
        return frame, frame
    cutoffs = pd.to_datetime(frame["cutoff_date"])
    allowed = cutoffs[cutoffs <= pd.Timestamp(latest)] if latest is not None else cutoffs
    last = allowed.max() if len(allowed) else cutoffs.max()
    purged = cutoffs + pd.Timedelta(days=label_days) <= last
    return frame[purged.to_numpy()], frame[(cutoffs == last).to_numpy()]


def split(snap: Snapshot, kind: ModelKind, latest: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows) of the kind's examples in ``snap``: :func:`time_holdout` under
    the tenant's label window for the kind (``ModelKind.label_days`` of the snapshot's windows)."""
    return time_holdout(load_examples(snap, kind), kind.label_days(snap.windows), latest)


def load_examples(snap: Snapshot, kind: ModelKind) -> pd.DataFrame:
    return snap.read(snap.table(kind.mart))


def catalogue_size(snap: Snapshot, holdout: pd.DataFrame) -> int | None:
    """Items available at the holdout's cutoff (the denominator of catalogue coverage)."""
    if holdout.empty:
        return None
    return snap.catalogue_items.get(str(pd.Timestamp(holdout["cutoff_date"].iloc[0]).date()))


def trainable(kind: ModelKind, frame: pd.DataFrame) -> pd.DataFrame:
    """Ranking queries without any clicked candidate carry no gradient: leave them out of training."""
    if kind.group is None or frame.empty:
        return frame
    has_pos = frame.groupby(kind.group, sort=False)[kind.label].transform("max").astype(bool)
    return frame[has_pos]


def fair_shares(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split ``budget`` rows evenly between tenants; one with fewer rows than its share keeps
    them all and leaves the rest to the others (water-filling)."""
    out, left = {}, budget
    ordered = sorted(sizes, key=lambda t: (sizes[t], t))
    for i, t in enumerate(ordered):
        out[t] = min(sizes[t], left // (len(ordered) - i))
        left -= out[t]
    return out


def sample_rows(kind: ModelKind, frame: pd.DataFrame, rows: int, seed_key: str) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, whole queries for ranking, the same for the same data
    (seeded by ``seed_key``), in their original order."""
    if len(frame) <= rows:
        return frame
    rng = np.random.default_rng(zlib.crc32(seed_key.encode()))
    if kind.group is None:
        return frame.iloc[np.sort(rng.choice(len(frame), size=rows, replace=False))]
    sizes = frame.groupby(kind.group, sort=True).size()
    picked = sizes.index.to_numpy()[rng.permutation(len(sizes))]
    fits = np.cumsum(sizes.loc[picked].to_numpy()) <= rows
    return frame[frame[kind.group].isin(picked[fits])]


def fit(
    kind: ModelKind,
    frame: pd.DataFrame,
    features: list[str],
    policy: TrainSettings,
    init_model: Any = None,
    num_threads: int | None = None,
) -> Any:
    """One LightGBM model (``lightgbm.Booster``) on ``frame``, continued from ``init_model`` when given.

    A continued model takes 60% of the learning rate and the kind's ``fine_tune_rounds``.
    """
    import lightgbm as lgb

    frame = trainable(kind, frame)
    params = {**kind.params, "num_threads": num_threads or policy.threads}
    rounds = kind.num_boost_round
    if init_model is not None:
        params["learning_rate"] = params["learning_rate"] * 0.6
        rounds = kind.fine_tune_rounds
    group = frame.groupby(kind.group, sort=False).size().to_numpy() if kind.group else None
    data = lgb.Dataset(
        kind.matrix(frame, features),
        label=frame[kind.label].astype(int).to_numpy(),
        group=group,
        feature_name=features,
        free_raw_data=True,
        params={"max_bin": params["max_bin"]},
    )
    return lgb.train(params, data, num_boost_round=rounds, init_model=init_model)


def predict(
    kind: ModelKind, booster: Any, frame: pd.DataFrame, features: list[str], num_threads: int = 1
) -> np.ndarray:
    return booster.predict(kind.matrix(frame, features), num_threads=num_threads)


def evaluate(
    kind: ModelKind, booster: Any, holdout: pd.DataFrame, features: list[str], catalogue: int | None
) -> dict[str, float]:
    """The kind's holdout metrics of a model (empty without a holdout)."""
    if holdout.empty:
        return {}
    return kind.metrics(holdout, predict(kind, booster, holdout, features), catalogue)


def baseline_metrics(kind: ModelKind, holdout: pd.DataFrame, catalogue: int | None) -> dict[str, float]:
    """The kind's non-ML baseline on the same holdout (empty without a holdout)."""
    return kind.metrics(holdout, kind.baseline(holdout), catalogue) if not holdout.empty else {}
