"""A batch of landing rows checked against the landing contract: a quarantine reason per row, problems per day.

Great Expectations costs about a second per validation whatever the size, so a run validates
all of a tenant's rows (any number of landing days) in one call, the timestamp rule relative to
each row's landing day, and the per-day table checks in a second call over a one-row-per-day
summary.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ml.core.contract import LANDING_COLUMNS, USER_EVENT_TYPES, VALUE_EVENT_TYPES
from ml.core.settings import Settings
from ml.core.tenants import Tenant
from ml.data import landing_checks
from ml.data.ingest.readers import TEXT_COLUMNS, categorical
from ml.data.quality import ROW_ID, save_result


@dataclass
class BatchVerdict:
    """What the checks said: the reason per row (None: valid), and the problems of the batch and its days."""

    reasons: np.ndarray
    batch_problems: list[str]
    day_problems: dict[str, list[str]]
    success: bool


def validate_batch(
    typed: pd.DataFrame,
    days: list[date],
    tenant: Tenant,
    settings: Settings,
    max_null_user_share: float = 0.5,
    settling: Collection[date] = (),
) -> BatchVerdict:
    """Check a tenant's typed rows (``landed_on`` and ``ROW_ID`` set) and keep GX's results.

    A day that fails its table checks (no rows, keys mostly null), or a batch whose schema is
    wrong, is quarantined whole with reason ``batch_failed``. ``settling``: days whose every file is
    still being written; they have no table checks (no rows yet is not an empty batch: a later run
    ingests them).
    """
    day_end = pd.to_datetime(typed["landed_on"]).dt.tz_localize("UTC") + pd.Timedelta(days=1)
    typed["hours_before_drop_end"] = (day_end - typed["event_at"]).dt.total_seconds() / 3600
    # a batch without shop events or numbers is checked without those columns (landing_checks.events_suite)
    shop = (
        bool(typed["event_type"].isin(VALUE_EVENT_TYPES).any())
        or not typed["numbers_parse"].all()
        or any(typed[c].notna().any() for c in ("value", "quantity", "price"))
    )
    columns = [ROW_ID, *LANDING_COLUMNS, "landed_on", "hours_before_drop_end", "dwell_parses", "numbers_parse"]
    gx_frame = typed[[c for c in columns if shop or c not in landing_checks.SHOP_COLUMNS]]
    # GX filters the whole frame once per expectation (nulls, row conditions), so every string
    # column is copied a few dozen times: as categoricals that copy is of integer codes (a
    # million rows: 2.8 s of checks -> 0.2 s to encode + 1.2 s). event_id is nearly unique, so
    # encoding it costs more than it saves: Arrow-backed strings.
    gx_frame = gx_frame.assign(
        event_id=gx_frame["event_id"].astype("string[pyarrow]"),
        **{c: categorical(gx_frame[c]) for c in [*TEXT_COLUMNS, "landed_on"] if c != "event_id"},
    )
    outcome = landing_checks.validate_events(gx_frame, tenant.tenant_id)
    day_problems, batch_result = landing_checks.validate_daily_batches(
        _day_summary(typed, [d for d in days if d not in settling]), tenant.tenant_id, max_null_user_share
    )
    stamp = f"{days[0].isoformat()}_{days[-1].isoformat()}"
    save_result(outcome.result, settings.stores.gx_result("landing", "events", tenant.tenant_id, stamp))
    save_result(batch_result, settings.stores.gx_result("landing", "batches", tenant.tenant_id, stamp))

    failed_days = {d for d, probs in day_problems.items() if probs}
    if outcome.batch_problems:  # e.g. the schema itself is wrong: nothing of this run lands
        failed_days = {d.isoformat() for d in days}
    reasons = outcome.row_reasons
    batch_failed = typed["landed_on"].isin(failed_days).to_numpy() & pd.isna(reasons)
    reasons = np.where(batch_failed, "batch_failed", reasons).astype(object)
    return BatchVerdict(reasons, outcome.batch_problems, day_problems, outcome.success)


def _day_summary(typed: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """One row per landing day: ``landed_on, rows, null_event_id_share, null_user_id_share``."""
    user_rows = typed["event_type"].isin(USER_EVENT_TYPES)
    flags = pd.DataFrame(  # only the columns the summary needs: no copy of the whole frame
        {
            "landed_on": typed["landed_on"],
            ROW_ID: typed[ROW_ID],
            "_null_eid": typed["event_id"].isna(),
            "_null_uid": typed["user_id"].isna() & user_rows,
            "_user": user_rows,
        }
    )
    per_day = flags.groupby("landed_on", as_index=False).agg(
        rows=(ROW_ID, "size"),
        _n_null_eid=("_null_eid", "sum"),
        _n_null_uid=("_null_uid", "sum"),
        _n_user=("_user", "sum"),
    )
    landed_on = pd.Series([d.isoformat() for d in days], dtype=object)  # (typed, as per_day's, with no days too)
    summary = pd.DataFrame({"landed_on": landed_on}).merge(per_day, on="landed_on", how="left")
    summary = summary.fillna(0)
    summary["null_event_id_share"] = summary["_n_null_eid"] / summary["rows"].clip(lower=1)
    summary["null_user_id_share"] = summary["_n_null_uid"] / summary["_n_user"].clip(lower=1)
    summary["rows"] = summary["rows"].astype("int64")
    return summary[["landed_on", "rows", "null_event_id_share", "null_user_id_share"]]
