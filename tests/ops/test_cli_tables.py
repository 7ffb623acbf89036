"""The CLI's tables on a narrow terminal: a cell's long word folds onto the next line, never cut."""

from __future__ import annotations

from rich.console import Console

from ml.ops.tables import folding_table


def test_a_long_actor_folds_whole_onto_the_next_lines_where_rich_would_cut_it():
    actor = "airflow:train/manual__2026-12-06T23:00:00.123456+00:00"
    table = folding_table("at (UTC)", "actor", "reason")
    table.add_row("2026-12-06 23:00", actor, "the challenger beat the champion by the margin")
    console = Console(width=60, record=True)
    console.print(table)
    rows = [line.split("│") for line in console.export_text().splitlines() if line.startswith("│")]
    assert len(rows) > 1 and "…" not in console.export_text()
    assert "".join(r[2].strip() for r in rows) == actor
