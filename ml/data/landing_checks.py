"""The landing contract as Great Expectations suites: which rows of a batch are quarantined, and why.

Each row-level expectation carries, in its ``meta``, the quarantine reason a failing row gets,
so the suite is the single source of the rules: ingestion asks GX which rows broke which
expectation (``unexpected_index_list``) and quarantines them with that reason. The contract's
columns, event types and lateness rules are :mod:`ml.core.contract`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.core.contract import (
    CLOCK_SKEW,
    EVENT_TYPES,
    ITEM_EVENT_TYPES,
    LANDING_COLUMNS,
    MAX_DWELL_SECONDS,
    MAX_LATENESS,
    USER_EVENT_TYPES,
    VALUE_EVENT_TYPES,
)
from ml.data.quality import ROW_ID, compact_result, gx_modules, validate_frame

# Quarantine reasons, in the order a row is blamed when it breaks several expectations.
REASONS = (
    "malformed_line",
    "tenant_mismatch",
    "null_event_id",
    "unknown_event_type",
    "bad_timestamp",
    "timestamp_in_future",
    "timestamp_too_old",
    "null_user_id",
    "null_item_id",
    "bad_dwell",
    "bad_number",
    "null_value",
)


@dataclass
class Outcome:
    """What GX said about one batch."""

    success: bool
    row_reasons: np.ndarray  # object array: the quarantine reason per row, or None
    batch_problems: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


SHOP_COLUMNS = ("value", "quantity", "price", "numbers_parse")  # checked only in batches that send them


def events_suite(tenant_id: str, shop: bool = True) -> Any:
    """The landing-events contract for one tenant's rows (any number of landing days).

            ``hours_before_drop_end`` is derived at ingestion: hours from the event to the end of the
            landing day of the drop that carried it; ``dwell_parses`` is False where a dwell was sent
            that is not a finite number (the typed ``dwell_seconds`` is then null), ``numbers_parse`` the same
        for ``value``, ``quantity`` and ``price``; a ``rating`` needs a ``value``. ``shop``: whether the
    batch sends any of those or a rating; a batch that does not is checked without :data:`SHOP_COLUMNS`
    (each column and expectation GX evaluates copies the frame: a content platform's million rows
    pay 0.5 s for checks that cannot fail on them). An event may be up to an hour in the future
            (clock skew) and up to seven days late.
    """
    gx, gxe = gx_modules()
    from great_expectations.expectations.row_conditions import Column

    # Column-map expectations skip nulls, so range checks need no "is not null" row condition
    # (row conditions cost GX a pandas query each).
    return gx.ExpectationSuite(
        name=f"landing_events.{tenant_id}",
        expectations=[
            gxe.ExpectTableColumnsToMatchSet(
                column_set=[
                    ROW_ID,
                    *(c for c in LANDING_COLUMNS if shop or c not in SHOP_COLUMNS),
                    "landed_on",
                    "hours_before_drop_end",
                    "dwell_parses",
                    *(["numbers_parse"] if shop else []),
                ],
                exact_match=True,
                meta={"batch": "schema_mismatch"},
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="tenant_id", value_set=[tenant_id], meta={"reason": "tenant_mismatch"}
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="tenant_id", meta={"reason": "tenant_mismatch"}),
            gxe.ExpectColumnValuesToNotBeNull(column="event_id", meta={"reason": "null_event_id"}),
            gxe.ExpectColumnValuesToBeInSet(
                column="event_type", value_set=list(EVENT_TYPES), meta={"reason": "unknown_event_type"}
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="event_type", meta={"reason": "unknown_event_type"}),
            gxe.ExpectColumnValuesToNotBeNull(column="event_at", meta={"reason": "bad_timestamp"}),
            gxe.ExpectColumnValuesToBeBetween(
                column="hours_before_drop_end",
                min_value=-CLOCK_SKEW.total_seconds() / 3600,
                meta={"reason": "timestamp_in_future"},
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="hours_before_drop_end",
                max_value=24 + MAX_LATENESS.total_seconds() / 3600,
                meta={"reason": "timestamp_too_old"},
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="user_id",
                row_condition=Column("event_type").is_in(list(USER_EVENT_TYPES)),
                meta={"reason": "null_user_id"},
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="item_id",
                row_condition=Column("event_type").is_in(list(ITEM_EVENT_TYPES)),
                meta={"reason": "null_item_id"},
            ),
            gxe.ExpectColumnValuesToBeInSet(column="dwell_parses", value_set=[True], meta={"reason": "bad_dwell"}),
            gxe.ExpectColumnValuesToBeBetween(
                column="dwell_seconds",
                min_value=0,
                max_value=MAX_DWELL_SECONDS,
                meta={"reason": "bad_dwell"},
            ),
            *(_shop_expectations() if shop else []),
        ],
    )


def _shop_expectations() -> list[Any]:
    """A shop's numbers parse, and a rating has its value."""
    _, gxe = gx_modules()
    from great_expectations.expectations.row_conditions import Column

    return [
        gxe.ExpectColumnValuesToBeInSet(column="numbers_parse", value_set=[True], meta={"reason": "bad_number"}),
        gxe.ExpectColumnValuesToNotBeNull(
            column="value",
            row_condition=Column("event_type").is_in(list(VALUE_EVENT_TYPES)),
            meta={"reason": "null_value"},
        ),
    ]


def daily_batches_suite(tenant_id: str, max_null_user_share: float = 0.5) -> Any:
    """Table-level checks, one row per landing day of a tenant: GX passes value-level
    expectations vacuously on empty or all-null data, so each day must have rows and keys."""
    gx, gxe = gx_modules()
    return gx.ExpectationSuite(
        name=f"landing_batches.{tenant_id}",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1, meta={"batch": "no_batches"}),
            gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1, meta={"day": "empty_batch"}),
            gxe.ExpectColumnValuesToBeBetween(
                column="null_event_id_share", max_value=0.5, meta={"day": "keys_mostly_null"}
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="null_user_id_share", max_value=max_null_user_share, meta={"day": "keys_mostly_null"}
            ),
        ],
    )


def validate_events(df: pd.DataFrame, tenant_id: str) -> Outcome:
    """Validate a tenant's rows (any number of landing days); which rows to quarantine, why.
    ``df`` holds :data:`SHOP_COLUMNS` when the batch sends them (see :func:`events_suite`)."""
    n = len(df)
    reasons = np.full(n, None, dtype=object)
    shop = "numbers_parse" in df.columns
    result = validate_frame(df, events_suite(tenant_id, shop), f"events_{tenant_id}")
    batch_problems: list[str] = []
    blame: dict[str, list[int]] = {}
    for r in result.results:
        meta = r.expectation_config.meta or {}
        if r.success:
            continue
        if "batch" in meta:
            batch_problems.append(f"{meta['batch']}: {r.expectation_config.type} failed")
        elif "reason" in meta:
            idx = [int(u[ROW_ID]) for u in (r.result.get("unexpected_index_list") or [])]
            blame.setdefault(meta["reason"], []).extend(idx)
    for reason in reversed(REASONS):  # earlier reasons overwrite later ones
        if reason in blame:
            reasons[np.asarray(blame[reason], dtype=np.int64)] = reason
    return Outcome(
        success=bool(result.success), row_reasons=reasons, batch_problems=batch_problems, result=compact_result(result)
    )


def validate_daily_batches(
    days: pd.DataFrame, tenant_id: str, max_null_user_share: float = 0.5
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Validate the per-day summary (``landed_on, rows, null_*_share``); problems per day.
    ``max_null_user_share``: the tenant's source spec's (``rows.max_null_user_share``)."""
    frame = days.reset_index(drop=True).assign(**{ROW_ID: np.arange(len(days))})
    result = validate_frame(frame, daily_batches_suite(tenant_id, max_null_user_share), f"batches_{tenant_id}")
    problems: dict[str, list[str]] = {}
    for r in result.results:
        meta = r.expectation_config.meta or {}
        if r.success or "day" not in meta:
            continue
        col = r.expectation_config.kwargs.get("column")
        for u in r.result.get("unexpected_index_list") or []:
            day = str(frame.loc[int(u[ROW_ID]), "landed_on"])
            problems.setdefault(day, []).append(f"{meta['day']}: {col} = {u.get(col)}")
    return problems, compact_result(result)
