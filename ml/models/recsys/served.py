"""What a classic family champion serves: batch scoring's lists and the API's, from the
``interaction_history`` mart at the serving cutoff (or one user's published rows), and why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.models.recsys.families import Recommender, popularity
from ml.models.recsys.interactions import Interactions, recommend


def history_events(history: pd.DataFrame) -> pd.DataFrame:
    """``interaction_history`` mart rows as events for :class:`Interactions` (a day's
    interactions at its midnight, UTC)."""
    return pd.DataFrame(
        {
            "user_id": history["user_id"].to_numpy(),
            "item_id": history["item_id"].to_numpy(),
            "event_at": pd.to_datetime(history["event_date"]).dt.tz_localize("UTC"),
            "interactions": history["interactions"].to_numpy(dtype=np.float64),
        }
    )


def serve_lists(
    model: Recommender, history: pd.DataFrame, users: np.ndarray, k: int, exclude_seen: bool = True
) -> pd.DataFrame:
    """A classic family's top ``k`` for ``users`` from their ``interaction_history`` rows at the
    serving cutoff (``cutoff_date`` of the rows): ``user_id, item_id, rank, score``. What batch
    scoring writes and the API answers; a user without history gets the model's popularity order."""
    data = serving_data(model, history)
    return recommend(model, data, users, k, exclude_seen, fallback=popularity(model))


def explain_served(model: Recommender, history: pd.DataFrame, user_id: str, item_ids: Any) -> list:
    """Each served item's top 3 reasons for one user (:func:`ml.models.recsys.explain.explain`);
    none for a user the history does not know (they got the popularity order)."""
    from ml.models.recsys.explain import explain

    data = serving_data(model, history)
    rows = data.rows(np.array([user_id]))
    if rows[0] < 0 or not len(item_ids):
        return [[] for _ in range(len(item_ids))]
    return explain(model, model.history(data)[rows], data.columns(np.asarray(item_ids).astype(str)))


def serving_data(model: Recommender, history: pd.DataFrame) -> Interactions:
    """``interaction_history`` rows at the serving cutoff, indexed by the model's catalogue."""
    if history.empty:
        return Interactions.from_events(
            pd.DataFrame({"user_id": [], "item_id": [], "event_at": []}), pd.Timestamp.now(tz="UTC"), items=model.items
        )
    as_of = pd.Timestamp(history["cutoff_date"].max()).tz_localize("UTC")
    return Interactions.from_events(history_events(history), as_of, items=model.items)


def published_history(table: Any, user_id: str, serving_cutoff: str | None) -> pd.DataFrame | None:
    """One user's rows of a published ``interaction_history`` (an :class:`ml.data.publish.OnlineTable`)
    as mart rows for :func:`serve_lists`; None without history (or nothing published)."""
    rows = table.rows(user_id) if table is not None else None
    if rows is None or serving_cutoff is None:
        return None
    cutoff = pd.Timestamp(serving_cutoff)
    days = table.matrix[rows, table.columns["days_before_cutoff"]].astype(np.int64)
    return pd.DataFrame(
        {
            "user_id": user_id,
            "item_id": table.items[rows],
            "event_date": cutoff - pd.to_timedelta(days, unit="D"),
            "interactions": table.matrix[rows, table.columns["interactions"]],
            "cutoff_date": cutoff,
        }
    )


def family_items(
    model: Recommender,
    history: pd.DataFrame,
    user_id: str,
    k: int,
    exclude: list[str],
    exclude_seen: bool,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """The API's answer items for one user (``rank, item_id, score`` and, with ``explain``, each
    item's top 3 reasons), never an item of ``exclude``."""
    lists = serve_lists(model, history, np.array([user_id]), k + len(exclude), exclude_seen)
    lists = lists[~lists["item_id"].isin(exclude)].head(k)
    pairs = enumerate(zip(lists["item_id"], lists["score"], strict=True))
    items: list[dict[str, Any]] = [{"rank": r + 1, "item_id": str(i), "score": float(s)} for r, (i, s) in pairs]
    for entry, terms in zip(
        items, explain_served(model, history, user_id, lists["item_id"]) if explain else [], strict=False
    ):
        entry["explanation"] = [{"feature": f, "value": v, "contribution": c} for f, v, c in terms]
    return items
