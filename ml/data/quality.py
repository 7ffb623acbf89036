"""Great Expectations, as Tenantflow runs it: one in-memory context, validations, kept results.

The suites themselves are the contracts: :mod:`ml.data.landing_checks` for every landing batch,
:mod:`ml.data.feature_checks` for each tenant's feature marts. GX passes value-level expectations
vacuously on empty or all-null data, so every suite also checks row counts and non-null keys.
:mod:`ml.data.data_docs` renders the kept results as Data Docs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core import atomic
from ml.core.settings import Settings

ROW_ID = "_row_id"  # the column GX names unexpected rows by

log = logging.getLogger(__name__)


def gx_modules() -> tuple[Any, Any]:  # imported lazily: GX takes seconds to import
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
        gx, _ = gx_modules()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX fingerprints every pandas batch below 1 GB (an MD5 over a full-frame hash: ~2.5 s
        # per million landing rows, a tenth of ingestion). Nothing here reads the fingerprint,
        # and our own lineage records the landing files' SHA-256 instead.
        from great_expectations.execution_engine import pandas_execution_engine

        pandas_execution_engine.HASH_THRESHOLD = 0
        # its INFO line on each process's first context ("Created temporary directory ... for ephemeral docs site")
        # says nothing to a user of the CLI, where it reached stderr
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT.data_sources.add_pandas("frames")
    return _CONTEXT


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


def compact_result(result: Any) -> dict[str, Any]:
    """The validation result without the per-row index lists (they go to quarantine)."""
    d = result.to_json_dict()
    for r in d.get("results", []):
        res = r.get("result") or {}
        for key in (
            "unexpected_index_list",
            "unexpected_list",
            "partial_unexpected_index_list",
            "partial_unexpected_list",
            "partial_unexpected_counts",
            "unexpected_index_query",
        ):
            res.pop(key, None)
    return d


def save_result(result: dict[str, Any], path: Path) -> None:
    """Keep a validation result as JSON (Data Docs are built from these)."""
    atomic.write_json(path, result, sort_keys=True)


def latest_results(settings: Settings, tenant_id: str) -> list[dict[str, Any]]:
    """The newest kept validation result of each of a tenant's suites (landing batches, feature
    marts), summarised for a page that needs no assets (the tenant view; GX's own Data Docs load
    theirs from CDNs). Each: ``area``, ``suite``, ``batch`` (the file's stamp), ``success``,
    ``statistics`` (GX's counts), ``expectations``: ``type``, ``column``, ``severity``, ``success``,
    ``observed`` (GX's observed value, or the unexpected count and percent), in the suite's order."""
    out = []
    for folder in settings.stores.gx_tenant_dirs(tenant_id):
        # the newest written, not the newest name: a stamp is the landing dates a batch covered, and a
        # re-ingest of older days is the latest word on them
        files = sorted(folder.glob("*.json"), key=lambda f: (f.stat().st_mtime, f.name))
        if not files:
            continue
        data = json.loads(files[-1].read_text())
        rows = []
        for r in data.get("results", []):
            cfg, res = r.get("expectation_config") or {}, r.get("result") or {}
            observed = res.get("observed_value")
            if observed is None and "unexpected_count" in res:
                observed = f"{res['unexpected_count']} unexpected ({res.get('unexpected_percent') or 0:.2f}%)"
            rows.append(
                {
                    "type": cfg.get("type"),
                    "column": (cfg.get("kwargs") or {}).get("column"),
                    "severity": cfg.get("severity"),
                    "success": bool(r.get("success")),
                    "observed": observed,
                }
            )
        out.append(
            {
                "area": folder.parent.parent.name,
                "suite": data.get("suite_name") or folder.parent.name,
                "batch": files[-1].stem,
                "success": bool(data.get("success")),
                "statistics": data.get("statistics") or {},
                "expectations": rows,
            }
        )
    return out
