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
``alice2``; ``12524`` is in ``12524.0``): :func:`names_pattern` for a known id, :func:`erased_lines` for the
tombstones. A tombstone recorded before lengths were kept matches rows only, not lines (hashing every whole token of
a line is quadratic in its length): erase that user again to cover their re-sent malformed lines.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import string
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


def names_pattern(user_id: str) -> str:
    """A regular expression (Python ``re`` and RE2) matching ``user_id`` as a whole token of a line:
    not inside a longer id (``alice`` is not in ``alice2``; ``12524`` is in ``12524.0``)."""
    return f"(?:^|{TOKEN_EDGE}){re.escape(user_id)}(?:{TOKEN_EDGE}|$)"  # groups that capture make pandas warn


_WORD = frozenset(string.ascii_letters + string.digits + "_")  # the characters TOKEN_EDGE is not


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
    token (module docstring): each token of an erased id's length is hashed, about ``len(line) x`` the tombstones'
    distinct lengths hashes a line. Nothing is hashed for a tenant without tombstones of known length."""
    found = np.zeros(len(lines), dtype=bool)
    dead = {h: n for h, n in _lengths(settings, tenant_id).items() if n is not None}
    if not dead or not len(lines):
        return found
    keyed = hmac.new(_key(settings), digestmod=hashlib.sha256)  # the key's pads once; a copy per token
    prefix, sizes = f"{tenant_id}\0".encode(), sorted(set(dead.values()))

    def tombstone(token: str) -> bool:
        h = keyed.copy()
        h.update(prefix + token.encode())
        return h.hexdigest() in dead

    for i, line in enumerate(lines.tolist()):
        if isinstance(line, str):
            found[i] = any(tombstone(t) for t in _whole_tokens(line, sizes))
    return found


def _whole_tokens(line: str, sizes: list[int]) -> Iterator[str]:
    """The substrings of ``line`` of one of ``sizes`` characters that are whole tokens (module docstring)."""
    n = len(line)
    for s in (0, *(i + 1 for i, c in enumerate(line) if c not in _WORD)):
        yield from (line[s : s + k] for k in sizes if s + k == n or (s + k < n and line[s + k] not in _WORD))
