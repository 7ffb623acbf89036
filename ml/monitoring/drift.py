"""Drift between two windows of a tenant's data, measured by Evidently 0.7's ``DataDriftPreset``.

Methods are fixed, not chosen by sample size, so a verdict does not flip when a tenant grows:
normed Wasserstein distance for numbers, Jensen-Shannon distance for categories. A column that
cannot be compared (all null, single-valued) is reported by name with the reason, never as
"no drift"; a NaN distance is an error row.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core import atomic
from ml.monitoring.results import CheckResult


def _column_problems(ref: pd.Series, cur: pd.Series) -> str | None:
    """Why a column cannot be compared, or None. Evidently raises on all-null columns and returns
    NaN for single-valued ones; both are reported here by name instead."""
    if ref.notna().sum() == 0:
        return "all values missing in the reference window"
    if cur.notna().sum() == 0:
        return "all values missing in the current window"
    if ref.nunique(dropna=True) <= 1 and cur.nunique(dropna=True) <= 1:
        same = set(ref.dropna().unique()) == set(cur.dropna().unique())
        return (
            "a single value in both windows"
            if same
            else f"a single value, changed from {ref.dropna().iloc[0]!r} to {cur.dropna().iloc[0]!r}"
        )
    if pd.api.types.is_numeric_dtype(ref) and ref.nunique(dropna=True) <= 1:
        return "a single value in the reference window: its spread is zero, so no normed distance exists"
    return None


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    threshold: float,
    html_path: Path | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Per-column drift distances (Evidently ``DataDriftPreset``) and the columns it could not judge.

    Methods are fixed, not chosen by sample size, so a verdict does not flip when a tenant grows:
    normed Wasserstein distance for numbers, Jensen-Shannon distance for categories.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    problems: dict[str, str] = {}
    num: list[str] = []
    cat: list[str] = []
    for cols, out in ((numerical, num), (categorical, cat)):
        for c in cols:
            why = _column_problems(reference[c], current[c])
            if why:
                problems[c] = why
            else:
                out.append(c)
    if not num and not cat:
        return {}, problems
    ref = reference[num + cat].copy()
    cur = current[num + cat].copy()
    for c in cat:
        ref[c], cur[c] = ref[c].astype("string").fillna("(missing)"), cur[c].astype("string").fillna("(missing)")
    for c in num:
        ref[c], cur[c] = ref[c].astype("float64"), cur[c].astype("float64")
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    report = Report(
        [DataDriftPreset(columns=num + cat, num_method="wasserstein", cat_method="jensenshannon", threshold=threshold)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        snap = report.run(
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
            current_data=Dataset.from_pandas(cur, data_definition=definition),
        )
    distances: dict[str, float] = {}
    for m in snap.dict()["metrics"]:
        column = m.get("config", {}).get("column")
        if m.get("config", {}).get("type", "").endswith("ValueDrift") and column is not None:
            distances[column] = float(m["value"]) if m["value"] is not None else float("nan")
    if html_path is not None:
        with atomic.replacing(html_path) as tmp:
            snap.save_html(str(tmp))
    return distances, problems


def sample(frame: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def column_rows(
    base: dict[str, Any],
    distances: dict[str, float],
    problems: dict[str, str],
    threshold: float,
    new_categories: dict[str, list[str]] | None = None,
) -> list[CheckResult]:
    rows = []
    for col, d in sorted(distances.items()):
        extra = (
            f"new categories: {', '.join(new_categories[col])}" if new_categories and new_categories.get(col) else ""
        )
        if math.isnan(d):
            rows.append(
                CheckResult(
                    **base,
                    metric=f"column:{col}",
                    value=None,
                    threshold=threshold,
                    drifted=None,
                    status="error",
                    detail="Evidently returned NaN: the distance is undefined",
                )
            )
        else:
            rows.append(
                CheckResult(
                    **base,
                    metric=f"column:{col}",
                    value=d,
                    threshold=threshold,
                    drifted=d > threshold,
                    status="ok",
                    detail=extra,
                )
            )
    for col, why in sorted(problems.items()):
        status = "skipped" if why == "a single value in both windows" else "error"
        rows.append(
            CheckResult(
                **base, metric=f"column:{col}", value=None, threshold=threshold, drifted=None, status=status, detail=why
            )
        )
    return rows
