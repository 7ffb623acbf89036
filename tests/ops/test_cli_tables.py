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


def _tenants_table():
    headers = ("tenant", "region", "onboarded", "windows (days): label / churn / feature", "interactions", "name")
    table = folding_table(*headers)
    table.add_row("initech", "us", "2026-12-07", "28/cadence/cadence", "purchase,add_to_cart", "Initech Corporation")
    table.add_row("acme", "eu", "2026-11-20", "cadence", "default", "acme")
    return headers, table


def _printed(table, width: int) -> list[str]:
    console = Console(width=width, record=True)
    console.print(table)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_a_narrowed_table_keeps_its_header_words_and_its_cells_words_whole_within_the_terminal():
    """Rich's own narrowing cuts the widest columns to one level, below a header's word (``onboar|ded``) and a date
    (``2026-1|2-07``); the table's keeps every header word whole, and every cell's word while there is room for all,
    and stays within the terminal's width (Rich's cut ignored ``min_width``, then widened the columns past it)."""
    headers, table = _tenants_table()
    for width in (70, 80, 100):
        lines = _printed(table, width)
        assert max(len(line) for line in lines) <= width, (width, lines)
        head = " ".join(line for line in lines if line.startswith("┃"))
        words = {w for line in lines if line.startswith("┃") for cell in line.split("┃") for w in cell.split()}
        assert {w for h in headers for w in h.split()} <= words, (width, head)
    rows = [line for line in _printed(table, 100) if line.startswith("│")]
    assert any("2026-12-07" in r for r in rows) and any("28/cadence/cadence" in r for r in rows), rows


def test_a_table_too_narrow_for_its_headers_prints_a_block_per_row():
    """Below the headers' width (their longest words, padding and borders) each row is a block: its first cell, then
    ``header: cell`` lines, a cell's further lines indented under it."""
    headers, table = _tenants_table()
    assert table.headers_width() == 63  # 44 for the longest words, 12 of padding, 7 borders
    lines = _printed(table, 62)
    assert [line.split() for line in lines[:3]] == [["initech"], ["region:", "us"], ["onboarded:", "2026-12-07"]]
    assert lines[1].startswith("  region:") and not [line for line in lines if "┃" in line or "│" in line]
    blocks = "\n".join(lines).split("\n\n")
    expected = "acme region: eu onboarded: 2026-11-20 windows (days): cadence label / churn / feature: interactions:"
    assert blocks[1].split() == [*expected.split(), "default", "name:", "acme"], blocks  # (a long header folds)
    assert "  windows (days):      28/cadence/cadence" in lines, lines
    assert max(len(line) for line in lines) <= 62


def test_a_block_is_styled_as_its_cells_and_a_short_row_or_an_empty_table_still_prints():
    """The first cell is bold, not the block (the other cells keep their own styles); a string is read as markup as
    the table reads it; a row with fewer cells leaves the rest empty; a table without rows prints its headers."""
    from rich.text import Text

    table = folding_table("tenant", "interactions", "status")  # (34 columns wide at the least)
    table.add_row("acme", "[green]ok[/green]")
    table.add_row(Text("initech"), None, Text("bad", "red"))
    console = Console(width=20, record=True, force_terminal=True, color_system="standard")
    console.print(table)
    text = console.export_text(clear=False)
    assert "[green]" not in text and "None" not in text and "…" not in text, text
    assert "  interactions: ok" in [line.rstrip() for line in text.splitlines()], text
    styled = console.export_text(styles=True)
    assert "\x1b[1macme\x1b[0m" in styled and "\x1b[32mok\x1b[0m" in styled and "\x1b[31mbad\x1b[0m" in styled, styled
    empty = folding_table("tenant", "interactions", "status")
    assert " ".join(_printed(empty, 20)).split() == ["no", "rows", "(tenant,", "interactions,", "status)"]
