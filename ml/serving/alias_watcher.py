"""A child process that polls the registry's aliases and hands the server only what changed.

Listing the registry is 10-15 ms of Python per poll on a SQLite store (SQLAlchemy builds every
entity), more as tenants grow. In the serving process that work holds the GIL against the request
handlers: each time a handler gives the GIL up for a socket call it waits up to the 5 ms switch
interval to get it back, which put p99 at 20-40 ms at 300 requests/s. In a child process the poll
costs the handlers nothing; the server reads a small dict from a pipe when the aliases moved, and
still loads the moved models itself.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ml.core.settings import Settings
from ml.serving.models import MlflowUnavailable, registry_aliases

log = logging.getLogger(__name__)


class AliasWatcher:
    """Polls the registry's aliases in a child process (see the module docstring)."""

    def __init__(self, settings: Settings, every: float) -> None:
        import multiprocessing

        self.settings, self.every = settings, every
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._conn: Any = None  # multiprocessing.connection.Connection
        self._proc: Any = None  # multiprocessing.context.SpawnProcess

    def start(self) -> None:
        self._conn, child = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(
            target=_watch_aliases,
            args=(self.settings, self.every, child, os.getpid()),
            name="tenantflow-alias-watcher",
            daemon=True,
        )
        self._proc.start()
        child.close()

    def latest(self, wait: float = 0.0) -> dict[str, dict[str, str]] | MlflowUnavailable | None:
        """The newest state sent since the last call (waiting up to ``wait`` s for one), or None."""
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                log.warning("the alias watcher exited (code %s); starting a new one", self._proc.exitcode)
            self.start()
            wait = max(wait, 30.0)  # a fresh child imports MLflow before its first answer
        assert self._conn is not None
        newest = None
        try:
            while self._conn.poll(wait):
                kind, payload = self._conn.recv()
                newest = payload if kind == "aliases" else MlflowUnavailable(payload)
                wait = 0.0
        except (EOFError, OSError):  # the child died mid-send: the next call starts a new one
            self._proc = None
        return newest

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()


def _watch_aliases(settings: Settings, every: float, conn: Any, parent: int) -> None:
    """The watcher's loop: send the aliases (or the error) whenever they differ from the last sent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    last: tuple | None = None
    while os.getppid() == parent:  # the server was killed: nobody to tell
        try:
            state: tuple = ("aliases", registry_aliases(settings))
        except MlflowUnavailable as exc:
            state = ("unavailable", str(exc))
        if state != last:
            try:
                conn.send(state)
            except (BrokenPipeError, OSError):
                return
            last = state
        time.sleep(every)
