"""The Rich tables people read (``status``, ``models list``, ``tenants list``, ``models audit``)."""

from __future__ import annotations

from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


WORD_FLOOR_MAX = 32  # the longest cell word a narrowed column keeps whole (an MLflow run id: 32 hex characters)


class FoldingTable(Table):
    """A table whose cells fold a word longer than their column (an actor, an id, a path) onto the next line where
    Rich would cut it with an ellipsis, and whose headers fold only between words. On a terminal too narrow for every
    header's longest word (``tenants list``'s fourteen columns on 80), each row is printed as a block instead: its
    first cell, then a ``header: cell`` line per other column. What a cell says is never lost to a narrow terminal."""

    def __init__(self, *headers: str, **table: Any) -> None:
        super().__init__(**table)
        for header in headers:
            self.add_column(header, overflow="fold", min_width=_longest_word(header))
        self.cells: list[tuple[Any, ...]] = []

    def add_row(self, *renderables: Any, **row: Any) -> None:
        self.cells.append(renderables)
        super().add_row(*renderables, **row)

    def headers_width(self) -> int:
        """The width the headers need, each folded between words only: their longest words, padding and borders."""
        padding = self.padding[1] + self.padding[3]
        return sum((c.min_width or 0) + padding for c in self.columns) + self._extra_width  # (Rich's: the borders)

    def _collapse_widths(self, widths: list[int], wrapable: list[bool], max_width: int) -> list[int]:  # type: ignore[override]
        """Rich's narrowing of the columns to ``max_width`` (widths with padding) where it keeps each column's header
        words whole, and its cells' longest words (up to ``WORD_FLOOR_MAX``) where the terminal has room for every
        column's; else the widest columns are cut to one level, the largest that fits, never below those words.
        (Rich's own cut ignores ``min_width``, then widens those columns back past the terminal's edge.)"""
        padding = self.padding[1] + self.padding[3]
        headers = [(c.min_width or 0) + padding for c in self.columns]
        words = [  # (a word longer than an id, a path, folds: it would take the other columns' room)
            max([h, *(min(_longest_word(r[i]), WORD_FLOOR_MAX) + padding for r in self.cells if i < len(r))])
            for i, h in enumerate(headers)
        ]
        floors = words if sum(min(w, f) for w, f in zip(widths, words, strict=True)) <= max_width else headers
        floors = [min(f, w) if wrap else w for f, w, wrap in zip(floors, widths, wrapable, strict=True)]
        collapsed = super()._collapse_widths(widths, wrapable, max_width)
        if all(c >= f for c, f in zip(collapsed, floors, strict=True)):  # Rich's, where it keeps those words
            return list(collapsed)

        def cut(level: int) -> list[int]:
            return [max(f, min(w, level)) for w, f in zip(widths, floors, strict=True)]

        low, high = 0, max(widths)  # the largest level whose cut fits (a bisection: the cut's sum grows with it)
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if sum(cut(mid)) <= max_width else (low, mid - 1)
        return cut(low)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.headers_width() <= options.max_width:
            yield from super().__rich_console__(console, options)
            return
        from rich.padding import Padding

        if self.title is not None:
            yield _text(self.title, console)
        if not self.cells:
            yield Text.assemble(("no rows", "bold"), " (" + ", ".join(str(c.header) for c in self.columns) + ")")
        label_word = max(_longest_word(c.header) for c in self.columns) + 1  # (with its colon)
        for row in self.cells:
            first = _text(row[0] if row else "", console).copy()
            first.stylize("bold")
            yield first
            # a header within a third of the width (its longest word at least), its cell in the rest; both fold
            fields = Table.grid(padding=(0, 1))
            fields.add_column(style="dim", overflow="fold", max_width=max(label_word, options.max_width // 3))
            fields.add_column(overflow="fold")
            for column, cell in zip_longest(self.columns[1:], row[1:]):
                if column is not None:  # (a row may have fewer cells than columns: the rest are empty)
                    fields.add_row(_text(column.header, console) + ":", _text(cell, console))
            yield Padding(fields, (0, 0, 1, 2))
        if self.caption is not None:
            yield _text(self.caption, console)


def _longest_word(cell: Any) -> int:
    """The terminal cells its longest word takes (a CJK character takes two)."""
    text = cell.plain if isinstance(cell, Text) else str(cell or "")
    return max((cell_len(word) for word in text.split()), default=0)


def _text(cell: Any, console: Console) -> Text:
    """A cell as the table shows it: Rich text as it is, a string read as markup, nothing as an empty cell."""
    if isinstance(cell, Text):
        return cell
    return console.render_str("" if cell is None else str(cell))


def folding_table(*headers: str, **table: Any) -> FoldingTable:
    """A :class:`FoldingTable` with these column headers (``table``: :class:`rich.table.Table`'s options)."""
    return FoldingTable(*headers, **table)
