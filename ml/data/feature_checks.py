"""Feature health: Great Expectations suites over each tenant's serving marts, and the verdict kept per tenant.

A tenant whose marts fail is marked unhealthy with the failing expectations (``reports/health``);
training and publishing skip it and the API keeps its last good features.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ml.core import atomic
from ml.core.settings import Settings
from ml.data.quality import compact_result, gx_modules, save_result, validate_frame

CHECKED_MARTS = ("user_features", "item_features")
# what a failed expectation on a column most likely means for the tenant, and what to do
HINTS = {
    ("item_features", "clicks_long"): (
        "no interaction in its long feature window: is any event it sends one of its interaction types? "
        "`tenantflow tenants show` lists them (empty: click, purchase, add_to_cart, rating); declare its own with "
        "`tenants add --interaction-types`, or map its event names with its source spec's event_types"
    ),
}


def sent_signals(frames: dict[str, pd.DataFrame]) -> frozenset[str]:
    """The optional signals a tenant's marts show it sends: ``completion`` (complete/skip events:
    a completion rate), ``topic`` (items with a topic). A shop sends neither; its checks then do
    not ask for them (a content tenant that stops sending one is drift monitoring's to catch)."""
    signals = set()
    users, items = frames.get("user_features"), frames.get("item_features")
    if users is not None and "completion_rate_long" in users and users["completion_rate_long"].notna().any():
        signals.add("completion")
    if items is not None and "topic" in items and items["topic"].notna().any():
        signals.add("topic")
    return frozenset(signals)


def feature_suites(
    tenant_id: str, signals: frozenset[str] = frozenset({"completion", "topic"}), feature_window_days: int = 28
) -> dict[str, Any]:
    """Suites for a tenant's serving marts: shape, keys, and value ranges that must hold;
    ``signals``: the optional ones it sends (:func:`sent_signals`); ``feature_window_days``: its
    long feature window (``int_tenant_windows``), within which every served user was last active."""
    gx, gxe = gx_modules()
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
                gxe.ExpectColumnValuesToBeBetween(column="events_long", min_value=1),
                gxe.ExpectColumnValuesToBeBetween(
                    column="days_since_last_activity", min_value=1, max_value=feature_window_days
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="completion_rate_long",
                    min_value=0,
                    max_value=1,
                    row_condition=Column("completion_rate_long").is_not_null(),
                ),
                *(
                    [gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(column="completion_rate_long", min_value=0.3)]
                    if "completion" in signals
                    else []
                ),
                gxe.ExpectColumnValuesToBeBetween(column="tenure_days", min_value=1),
            ],
        ),
        "item_features": gx.ExpectationSuite(
            name=f"item_features.{tenant_id}",
            expectations=[
                *base(["tenant_id", "item_id"]),
                gxe.ExpectColumnValuesToBeBetween(column="age_days", min_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="clicks_short", min_value=0),
                gxe.ExpectColumnSumToBeBetween(column="clicks_long", min_value=1),
                *([gxe.ExpectColumnValuesToNotBeNull(column="topic", mostly=0.95)] if "topic" in signals else []),
            ],
        ),
    }


def check_features(
    frames: dict[str, pd.DataFrame], tenant_id: str, settings: Settings, feature_window_days: int = 28
) -> dict[str, Any]:
    """Validate one tenant's marts (its long feature window: :func:`feature_suites`); return
    ``{"healthy", "health_problems", "feature_rows"}``."""
    problems: list[str] = []
    suites = feature_suites(tenant_id, sent_signals(frames), feature_window_days)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    for model, suite in suites.items():
        result = validate_frame(frames[model], suite, f"{model}_{tenant_id}")
        save_result(compact_result(result), settings.stores.gx_result("features", model, tenant_id, stamp))
        for r in result.results:
            if not r.success:
                cfg = r.expectation_config
                col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or ""
                unexpected = (r.result or {}).get("unexpected_count")
                hint = HINTS.get((model, col)) if isinstance(col, str) else None
                problems.append(
                    f"{model}: {cfg.type}({col}) failed"
                    + (f" on {unexpected} rows" if unexpected else "")
                    + (f" ({hint})" if hint else "")
                )
    return {
        "healthy": not problems,
        "health_problems": problems,
        "feature_rows": {m: len(f) for m, f in frames.items()},
    }


def read_health(settings: Settings, tenant_id: str) -> dict[str, Any] | None:
    """A tenant's last feature health (``healthy``, ``health_problems``, ``checked_at``, ...), or None."""
    try:
        return json.loads(settings.stores.health_file(tenant_id).read_text())
    except FileNotFoundError:
        return None


def write_health(settings: Settings, tenant_id: str, health: dict[str, Any]) -> None:
    atomic.write_json(settings.stores.health_file(tenant_id), health)
