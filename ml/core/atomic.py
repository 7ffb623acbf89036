"""Atomic writes: a reader sees a file (or folder) whole, old or new, never half written.

Everything Tenantflow writes that another process may read at the same moment goes through
here: the write lands in a hidden temporary name beside the target (``.<name>.<random>.tmp``,
which landing readers and globs skip), then :func:`os.replace` swaps it in. POSIX renames
within one file system are atomic. ``durable=True`` also fsyncs the file before the rename and
the folder after it, so an acknowledged write survives a crash or power loss (the webhook, the
lake); without it the write is atomic but may be lost by a crash, which derived files can afford.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # staging folders of content-addressed stores


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (the folder's entry table is what a rename changes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it atomically replaces ``path``.

    On an exception the temporary file is removed and ``path`` is untouched. Creates the parent
    folder. Use it for writers that want a path (``pyarrow.parquet.write_table``, DuckDB's
    ``COPY ... TO``, Evidently's ``save_html``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes, *, durable: bool = False) -> Path:
    with replacing(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str, *, durable: bool = False) -> Path:
    return write_bytes(path, text.encode(), durable=durable)


def write_json(path: Path, obj: Any, *, durable: bool = False, indent: int | None = 1, sort_keys: bool = False) -> Path:
    """``obj`` as JSON (dates and paths as strings)."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str), durable=durable)


def staging_dir(root: Path) -> Path:
    """A new hidden folder under ``root`` to fill before :func:`commit_dir` names it."""
    tmp = root / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(staged: Path, final: Path) -> bool:
    """Rename a filled staging folder to ``final``; for content-addressed stores.

    Returns False (and removes ``staged``) when ``final`` exists already: the same content was
    published before, and the original is kept.
    """
    if final.exists():
        shutil.rmtree(staged)
        return False
    os.replace(staged, final)
    return True


def remove_stale_staging(root: Path, older_than_seconds: float = 3600.0) -> None:
    """Remove staging folders of writers that died (older than an hour: never one in use)."""
    for p in root.glob(f"{TMP_PREFIX}*"):
        try:
            if time.time() - p.stat().st_mtime > older_than_seconds:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:
            pass
