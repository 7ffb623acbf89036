"""Progress for long commands: a Rich bar on a terminal, one line per step otherwise (logs, CI)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

err = Console(stderr=True)
# Tables on stdout: a terminal's width, or wide enough not to wrap rows when piped or logged.
out = Console(width=None if sys.stdout.isatty() else 200)


class Steps:
    """Advance once per finished step, saying what finished."""

    def __init__(self, progress: Progress | None, task: TaskID | None, what: str, total: int) -> None:
        self.progress, self.task, self.what, self.total, self.done = progress, task, what, total, 0

    def advance(self, message: str) -> None:
        self.done += 1
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1, description=f"{self.what}: {message}")
        else:
            print(f"[{self.done}/{self.total}] {self.what}: {message}", file=sys.stderr, flush=True)


@contextmanager
def steps(what: str, total: int) -> Iterator[Steps]:
    """``with steps("ingest", len(tenants)) as s: ... s.advance("acme")``."""
    if not err.is_terminal:
        yield Steps(None, None, what, total)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(what, total=total)
        yield Steps(progress, task, what, total)
