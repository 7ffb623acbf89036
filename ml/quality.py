"""Great Expectations suites: the contract every batch and feature table must meet.

Each row-level expectation carries, in its ``meta``, the quarantine reason a failing row gets,
so the suite is the single source of the rules: ingestion asks GX which rows broke which
expectation (``unexpected_index_list``) and quarantines them with that reason.

GX passes value-level expectations vacuously on empty or all-null data, so every suite also
checks the row count and non-null keys at table level.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROW_ID = "_row_id"
# The landing contract v1: the columns every drop carries (the generator writes exactly these).
LANDING_COLUMNS = (
    "event_id", "tenant_id", "user_id", "item_id", "event_type", "event_at",
    "session_id", "dwell_seconds", "topic", "device",
)  # fmt: skip
ALLOWED_EVENT_TYPES = (
    "click", "view", "complete", "skip", "like", "cancel_subscription", "item_published",
)  # fmt: skip
USER_EVENT_TYPES = ALLOWED_EVENT_TYPES[:6]
ITEM_EVENT_TYPES = ("click", "view", "complete", "skip", "like", "item_published")
MAX_LATENESS = timedelta(days=7)
CLOCK_SKEW = timedelta(hours=1)

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
)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What GX said about one batch."""

    success: bool
    row_reasons: np.ndarray  # object array: the quarantine reason per row, or None
    batch_problems: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def _gx():  # imported lazily: GX takes seconds to import
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


_CONTEXT: Any = None


def ephemeral_context() -> Any:
    """One in-memory GX context per process, with progress bars off."""
    global _CONTEXT
    if _CONTEXT is None:
        gx, _ = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX fingerprints every pandas batch below 1 GB (an MD5 over a full-frame hash: ~2.5 s
        # per million landing rows, a tenth of ingestion). Nothing here reads the fingerprint,
        # and our own lineage records the landing files' SHA-256 instead.
        from great_expectations.execution_engine import pandas_execution_engine

        pandas_execution_engine.HASH_THRESHOLD = 0
        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT.data_sources.add_pandas("frames")
    return _CONTEXT


def events_suite(tenant_id: str) -> Any:
    """The landing-events contract for one tenant's rows (any number of landing days).

    ``hours_before_drop_end`` is derived at ingestion: hours from the event to the end of the
    landing day of the drop that carried it. An event may be up to an hour in the future
    (clock skew) and up to seven days late.
    """
    gx, gxe = _gx()
    from great_expectations.expectations.row_conditions import Column

    # Column-map expectations skip nulls, so range checks need no "is not null" row condition
    # (row conditions cost GX a pandas query each).
    return gx.ExpectationSuite(
        name=f"landing_events.{tenant_id}",
        expectations=[
            gxe.ExpectTableColumnsToMatchSet(
                column_set=[ROW_ID, *LANDING_COLUMNS, "landed_on", "hours_before_drop_end"],
                exact_match=True, meta={"batch": "schema_mismatch"},
            ),
            gxe.ExpectColumnValuesToBeInSet(column="tenant_id", value_set=[tenant_id], meta={"reason": "tenant_mismatch"}),
            gxe.ExpectColumnValuesToNotBeNull(column="tenant_id", meta={"reason": "tenant_mismatch"}),
            gxe.ExpectColumnValuesToNotBeNull(column="event_id", meta={"reason": "null_event_id"}),
            gxe.ExpectColumnValuesToBeInSet(
                column="event_type", value_set=list(ALLOWED_EVENT_TYPES), meta={"reason": "unknown_event_type"}
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="event_type", meta={"reason": "unknown_event_type"}),
            gxe.ExpectColumnValuesToNotBeNull(column="event_at", meta={"reason": "bad_timestamp"}),
            gxe.ExpectColumnValuesToBeBetween(
                column="hours_before_drop_end", min_value=-CLOCK_SKEW.total_seconds() / 3600,
                meta={"reason": "timestamp_in_future"},
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="hours_before_drop_end", max_value=24 + MAX_LATENESS.total_seconds() / 3600,
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
            gxe.ExpectColumnValuesToBeBetween(
                column="dwell_seconds",
                min_value=0,
                max_value=86_400,
                meta={"reason": "bad_dwell"},
            ),
        ],
    )


def daily_batches_suite(tenant_id: str) -> Any:
    """Table-level checks, one row per landing day of a tenant: GX passes value-level
    expectations vacuously on empty or all-null data, so each day must have rows and keys."""
    gx, gxe = _gx()
    return gx.ExpectationSuite(
        name=f"landing_batches.{tenant_id}",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1, meta={"batch": "no_batches"}),
            gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1, meta={"day": "empty_batch"}),
            gxe.ExpectColumnValuesToBeBetween(column="null_event_id_share", max_value=0.5, meta={"day": "keys_mostly_null"}),
            gxe.ExpectColumnValuesToBeBetween(column="null_user_id_share", max_value=0.5, meta={"day": "keys_mostly_null"}),
        ],
    )




def validate_frame(df: pd.DataFrame, suite: Any, asset_name: str) -> Any:
    """Run a suite over a pandas frame; return GX's validation result (COMPLETE format)."""
    ctx = ephemeral_context()
    ds = ctx.data_sources.get("frames")
    try:
        asset = ds.get_asset(asset_name)
    except LookupError:
        asset = ds.add_dataframe_asset(asset_name)
    try:
        bd = asset.get_batch_definition("whole")
    except KeyError:
        bd = asset.add_batch_definition_whole_dataframe("whole")
    batch = bd.get_batch(batch_parameters={"dataframe": df})
    fmt: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": 0}
    if ROW_ID in df.columns:
        fmt["unexpected_index_column_names"] = [ROW_ID]
    return batch.validate(suite, result_format=fmt)


def validate_events(df: pd.DataFrame, tenant_id: str) -> Outcome:
    """Validate a tenant's rows (any number of landing days); which rows to quarantine, why."""
    n = len(df)
    reasons = np.full(n, None, dtype=object)
    result = validate_frame(df, events_suite(tenant_id), f"events_{tenant_id}")
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
    return Outcome(success=bool(result.success), row_reasons=reasons, batch_problems=batch_problems,
                   result=_compact_result(result))


def validate_daily_batches(days: pd.DataFrame, tenant_id: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Validate the per-day summary (``landed_on, rows, null_*_share``); problems per day."""
    frame = days.reset_index(drop=True).assign(**{ROW_ID: np.arange(len(days))})
    result = validate_frame(frame, daily_batches_suite(tenant_id), f"batches_{tenant_id}")
    problems: dict[str, list[str]] = {}
    for r in result.results:
        meta = r.expectation_config.meta or {}
        if r.success or "day" not in meta:
            continue
        col = r.expectation_config.kwargs.get("column")
        for u in r.result.get("unexpected_index_list") or []:
            day = str(frame.loc[int(u[ROW_ID]), "landed_on"])
            problems.setdefault(day, []).append(f"{meta['day']}: {col} = {u.get(col)}")
    return problems, _compact_result(result)


def _compact_result(result: Any) -> dict[str, Any]:
    """The validation result without the per-row index lists (they go to quarantine)."""
    d = result.to_json_dict()
    for r in d.get("results", []):
        res = r.get("result") or {}
        for key in ("unexpected_index_list", "unexpected_list", "partial_unexpected_index_list",
                    "partial_unexpected_list", "partial_unexpected_counts", "unexpected_index_query"):
            res.pop(key, None)
    return d


def save_result(result: dict[str, Any], path: Path) -> None:
    """Keep a validation result as JSON (Data Docs are built from these)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- features


def feature_suites(tenant_id: str) -> dict[str, Any]:
    """Suites for a tenant's serving marts: shape, keys, and value ranges that must hold."""
    gx, gxe = _gx()
    from great_expectations.expectations.row_conditions import Column

    def base(keys: list[str]) -> list[Any]:
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            *[gxe.ExpectColumnValuesToNotBeNull(column=k) for k in keys],
            gxe.ExpectCompoundColumnsToBeUnique(column_list=keys),
        ]

    return {
        "user_features": gx.ExpectationSuite(
            name=f"user_features.{tenant_id}",
            expectations=[
                *base(["tenant_id", "user_id"]),
                gxe.ExpectColumnValuesToBeBetween(column="events_28d", min_value=1),
                gxe.ExpectColumnValuesToBeBetween(column="days_since_last_activity", min_value=1, max_value=28),
                gxe.ExpectColumnValuesToBeBetween(
                    column="completion_rate_28d", min_value=0, max_value=1,
                    row_condition=Column("completion_rate_28d").is_not_null(),
                ),
                gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(column="completion_rate_28d", min_value=0.3),
                gxe.ExpectColumnValuesToBeBetween(column="tenure_days", min_value=1),
            ],
        ),
        "item_features": gx.ExpectationSuite(
            name=f"item_features.{tenant_id}",
            expectations=[
                *base(["tenant_id", "item_id"]),
                gxe.ExpectColumnValuesToBeBetween(column="age_days", min_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="clicks_7d", min_value=0),
                gxe.ExpectColumnSumToBeBetween(column="clicks_28d", min_value=1),
                gxe.ExpectColumnValuesToNotBeNull(column="topic", mostly=0.95),
            ],
        ),
    }


def check_features(frames: dict[str, pd.DataFrame], tenant_id: str, results_dir: Path) -> dict[str, Any]:
    """Validate one tenant's marts; return ``{"healthy", "health_problems", "feature_rows"}``."""
    problems: list[str] = []
    suites = feature_suites(tenant_id)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    for model, suite in suites.items():
        result = validate_frame(frames[model], suite, f"{model}_{tenant_id}")
        save_result(_compact_result(result), results_dir / model / f"tenant={tenant_id}" / f"{stamp}.json")
        for r in result.results:
            if not r.success:
                cfg = r.expectation_config
                col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or ""
                unexpected = (r.result or {}).get("unexpected_count")
                problems.append(
                    f"{model}: {cfg.type}({col}) failed" + (f" on {unexpected} rows" if unexpected else "")
                )
    return {
        "healthy": not problems,
        "health_problems": problems,
        "feature_rows": {m: len(f) for m, f in frames.items()},
    }


def build_data_docs(settings: Any = None) -> Path:
    """Render GX Data Docs (HTML) from every validation result Tenantflow kept."""
    from ml.settings import get_settings

    settings = settings or get_settings()
    gx, _ = _gx()
    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    settings.gx_home.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(settings.gx_home))
    root = settings.reports / "gx"
    for path in sorted(root.rglob("*.json")):
        data = json.loads(path.read_text())
        result = expectationSuiteValidationResultSchema.load(data)
        run_time = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=data.get("suite_name", path.parent.parent.name)),
            run_id=RunIdentifier(run_name=path.stem, run_time=run_time),
            batch_identifier=path.parent.name.replace("=", "_"),
        )
        ctx.validation_results_store.set(key, result)
    ctx.build_data_docs()
    index = settings.gx_home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    log.info("Data Docs: %s", index)
    return index
