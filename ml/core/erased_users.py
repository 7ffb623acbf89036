"""Tombstones of erased end users: a keyed hash per (tenant, user), never the user id itself.

``tenantflow erase user`` (:mod:`ml.ops.user_erasure`) records one before it deletes anything, so
ingestion drops a re-sent export's rows of that user (counted in the partition manifest as
``dropped["erased_user"]``, never quarantined: a quarantine keeps raw text) while the deletion
runs and forever after. The hash is HMAC-SHA256 (RFC 2104) keyed with a secret generated per home
(``secrets/erasure-key``, mode 0600, :mod:`ml.core.secret_files`): the control database alone
cannot be searched for a known user id, and the same user of two homes hashes differently. Beside
the hash the id's length is kept (a count of characters, no part of the id): a malformed line has
no ``user_id`` field, so :func:`erased_lines` hashes its whole tokens of those lengths only.

A line names a user when the id is a *whole token* of it (:data:`TOKEN_EDGE`): at the line's start
or after a character outside ``[0-9A-Za-z_]``, and at its end or before one (``alice`` is not in
``alice2``; ``12524`` is in ``12524.0``): the erasure's rule (:func:`ml.ops.user_erasure.names_pattern`).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.core import control_db, secret_files
from ml.core.settings import Settings


def _key(settings: Settings) -> bytes:
    return secret_files.generated(settings.stores.erasure_key).encode()


def user_hash(settings: Settings, tenant_id: str, user_id: str) -> str:
    """The tombstone of one user of one tenant (64 hex characters)."""
    return _hash(_key(settings), tenant_id, user_id)


def _hash(key: bytes, tenant_id: str, user_id: str) -> str:
    return hmac.new(key, f"{tenant_id}\0{user_id}".encode(), hashlib.sha256).hexdigest()


TOKEN_EDGE = "[^0-9A-Za-z_]"  # a character a whole token of a line is bounded by (or the line's start or end)
_WORD = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def record(con: sqlite3.Connection, settings: Settings, tenant_id: str, user_id: str) -> str:
    """Record the tombstone (and the id's length) inside the caller's control-database transaction; returns the
    hash."""
    digest = user_hash(settings, tenant_id, user_id)
    con.execute(
        "insert into erased_users (tenant_id, user_hash, erased_at, id_length) values (?, ?, ?, ?)"
        " on conflict do update set id_length = excluded.id_length",
        (tenant_id, digest, datetime.now(UTC).isoformat(timespec="seconds"), len(user_id)),
    )
    return digest


def tombstones(settings: Settings, tenant_id: str) -> set[str]:
    """The hashes of the tenant's erased users (empty for most tenants)."""
    return set(_lengths(settings, tenant_id))


def _lengths(settings: Settings, tenant_id: str) -> dict[str, int | None]:
    """Each tombstone of the tenant and its id's length (None: recorded before lengths were kept)."""
    with control_db.connect(settings) as con:
        rows = con.execute("select user_hash, id_length from erased_users where tenant_id = ?", (tenant_id,))
        return dict(rows.fetchall())


def erased_rows(settings: Settings, tenant_id: str, user_ids: pd.Series) -> np.ndarray:
    """Which rows (bool, ``len(user_ids)``) belong to an erased user of the tenant.

    Hashes each distinct user id once, and nothing at all for a tenant without tombstones.
    """
    found = np.zeros(len(user_ids), dtype=bool)
    dead = tombstones(settings, tenant_id)
    if not dead or not len(user_ids):
        return found
    codes, uniques = pd.factorize(user_ids, use_na_sentinel=True)
    key = _key(settings)
    hit = np.array([_hash(key, tenant_id, str(u)) in dead for u in uniques], dtype=bool)
    found[codes >= 0] = hit[codes[codes >= 0]]
    return found


def without_user(table: pa.Table, user_id: str) -> tuple[pa.Table, int]:
    """``table`` without the rows whose ``user_id`` is the user, and how many were removed (the
    table itself, and 0, when it has no such row or no ``user_id`` column)."""
    if "user_id" not in table.column_names:
        return table, 0
    mine = pc.fill_null(pc.equal(table.column("user_id").cast(pa.string()), pa.scalar(user_id)), False)
    n = int(pc.sum(mine).as_py() or 0)
    return (table.filter(pc.invert(mine)) if n else table), n


def erased_lines(settings: Settings, tenant_id: str, lines: pd.Series) -> np.ndarray:
    """Which ``lines`` (bool, ``len(lines)``; text, null for none) name an erased user of the tenant as a whole
    token (module docstring): its tokens of an erased id's length are hashed, every whole token where a tombstone's
    length is unknown. Nothing is hashed for a tenant without tombstones."""
    found = np.zeros(len(lines), dtype=bool)
    dead = _lengths(settings, tenant_id)
    if not dead or not len(lines):
        return found
    key, sizes = _key(settings), {n for n in dead.values() if n is not None}
    any_size = None in dead.values()
    for i, line in enumerate(lines.tolist()):
        if isinstance(line, str):
            found[i] = any(_hash(key, tenant_id, t) in dead for t in _whole_tokens(line, sizes, any_size))
    return found


def _whole_tokens(line: str, sizes: set[int], any_size: bool) -> Iterator[str]:
    """The substrings of ``line`` that are whole tokens of one of ``sizes`` characters (of any size: ``any_size``)."""
    edges = [i for i, c in enumerate(line) if c not in _WORD]
    starts, ends = [0, *(i + 1 for i in edges)], [*edges, len(line)]
    for s in starts:
        if any_size:
            yield from (line[s:e] for e in ends if e > s)
        else:  # ends at the line's end or before an edge
            yield from (
                line[s : s + n] for n in sizes if s + n == len(line) or (s + n < len(line) and line[s + n] not in _WORD)
            )
