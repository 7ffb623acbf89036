"""The Rich tables people read (``status``, ``models list``, ``tenants list``, ``models audit``)."""

from __future__ import annotations

from typing import Any


def folding_table(*headers: str, **table: Any) -> Any:
    """A :class:`rich.table.Table` (``table``: its options) whose cells fold a word longer than their column (an
    actor, an id, a path) onto the next line where Rich would cut it with an ellipsis: what a cell says is never lost
    to a narrow terminal."""
    from rich.table import Table

    out = Table(**table)
    for header in headers:
        out.add_column(header, overflow="fold")
    return out
