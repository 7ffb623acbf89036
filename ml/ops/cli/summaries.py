"""What ``tenantflow ingest`` and ``tenantflow import`` print: their summaries as tables, the next command to run.

Both commands take ``--json`` for the summaries as they are (:func:`ml.data.ingest.run.summarise`,
:meth:`ml.data.ingest.history.HistoryImport.summary`).
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ml.ops.cli.progress import out  # (a terminal's width, else 200 columns: no cell cut when piped)


def _counts(counts: dict[str, int], empty: str = "-") -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or empty


def print_ingest(summaries: list[dict[str, Any]]) -> None:
    """An ingest's summaries (one per tenant, :func:`ml.data.ingest.run.summarise`) as one table, a row per tenant
    (``rows in = landed + quarantined + dropped + duplicates``), then each tenant's problems and what to run next."""
    table = Table(title="ingest: per tenant")
    for col in ("tenant", "days", "changed", "rows in", "landed", "quarantined", "dropped", "duplicates"):
        table.add_column(col, justify="left" if col in ("tenant", "quarantined", "dropped") else "right")
    for s in summaries:
        table.add_row(
            s["tenant_id"],
            f"{len(s['dates']):,}",
            f"{len(s['changed_dates']):,}",
            f"{s['rows_in']:,}",
            f"{s['landed']:,}",
            _counts(s["quarantined"]),
            _counts(s["dropped"]),
            f"{s['duplicates_dropped']:,}",
        )
    out.print(table)
    for s in summaries:
        if s["other_tenant_rows"] or s["unattributed_lines"]:
            out.print(
                f"{s['tenant_id']}: its days' shared exports held {s['other_tenant_rows']:,} rows of other tenants and "
                f"{s['unattributed_lines']:,} lines naming no tenant, skipped (not in rows in; see the problems)"
            )
        for p in s["batch_problems"]:
            out.print(f"[yellow]problem[/]: {s['tenant_id']}: {escape(p)}")  # (a file's name may hold [ ])
    if not summaries:
        out.print("No tenant to ingest: onboard one first (`tenantflow tenants add`).")
    elif not any(s["dates"] for s in summaries):
        out.print("Nothing to do: no landing folder of these tenants on these days.")
    elif changed := [s for s in summaries if s["changed_dates"]]:
        tenants = " ".join(f"--tenant {s['tenant_id']}" for s in changed)
        first = min(d for s in changed for d in s["changed_dates"])  # (the ingest DAG's rebuild_from: the same)
        out.print(
            f"Next: the features DAG (the ingest DAG starts it) or `tenantflow features build {tenants} "
            f"--rebuild-from {first}` builds the changed days' features (their activity rebuilt from the first)."
        )
    elif any(s["waiting_files"] for s in summaries):
        out.print("Nothing landed yet: the files still being written wait (below); run the same ingest again.")
    else:
        out.print("Nothing changed: every day was ingested before from the same files.")


def print_import(summary: dict[str, Any], has_features: bool = False) -> None:
    """An import's summary (:meth:`ml.data.ingest.history.HistoryImport.summary`) as a table per day, its totals and
    what to run next."""
    table = Table(title=f"history import of {summary['tenant_id']}: per day")
    for col in ("date", "rows in", "landed", "quarantined", "dropped", "duplicates"):
        table.add_column(col, justify="left" if col in ("date", "quarantined", "dropped") else "right")
    for d in summary["per_day"]:
        reasons, dropped = _counts(d["quarantined"]), _counts(d["dropped"])
        table.add_row(
            d["date"], f"{d['rows_in']:,}", f"{d['landed']:,}", reasons, dropped, f"{d['duplicates_dropped']:,}"
        )
    if summary["per_day"]:
        out.print(table)
    reasons = _counts(summary["quarantined"], "none")
    out.print(
        f"{summary['files']} files ({summary['files_unchanged']} imported before, unchanged; "
        f"{summary['files_without_rows']} without rows of this tenant; {summary['rows_read']:,} of its rows read), "
        f"{summary['days_ingested']} days ingested whole (every landed file of the day) in {summary['seconds']} s: "
        f"{summary['rows_in']:,} rows in, "
        f"{summary['landed']:,} landed, quarantined: {reasons}, dropped by rule: {summary['dropped'] or 'none'}, "
        f"{summary['duplicates_dropped']:,} duplicates dropped"
        + (f"; {summary['other_tenant_rows']:,} rows of other tenants skipped" if summary["other_tenant_rows"] else "")
        + (f"; {n:,} rows of erased users not written" if (n := summary["erased_user_rows"]) else "")
        + (
            f"; {summary['unattributed_lines']:,} lines naming no tenant skipped (see the problems)"
            if summary["unattributed_lines"]
            else ""
        )
    )
    if not summary["days_ingested"] and summary["files_unchanged"]:
        out.print("Nothing to do: every file with rows of this tenant was imported before with the same result.")
    elif not summary["days_ingested"]:
        out.print("Nothing imported: no file held rows of this tenant (see the problems, if any).")
    elif has_features:  # built before: the imported days' activity is rebuilt whole from their first
        first = summary["per_day"][0]["date"]
        out.print(
            f"Next: `tenantflow features build --tenant {summary['tenant_id']} --rebuild-from {first}` (the features "
            f"DAG's rebuild_from param): the tenant has features, and the imported days' activity is built again."
        )
    else:
        out.print(
            f"Next: the features DAG (or `tenantflow features build --tenant {summary['tenant_id']}`) builds the "
            "tenant's features from its whole history."
        )
    for p in summary["problems"]:
        out.print(f"[yellow]problem[/]: {escape(p)}")  # (a file's name may hold [ ]: text, never markup)
