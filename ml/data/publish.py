"""Published features: each tenant's serving marts, copied out of its warehouse for the API.

After each feature build every healthy tenant's online marts (the union of the model kinds'
``online_marts``) are copied out of its warehouse (read-only, under the warehouse lock) into an
immutable folder ``published/region=R/tenant=T/<id>/<mart>.parquet``, and the tenant's
``CURRENT`` file is replaced atomically to point at it. The API never opens a warehouse (DuckDB
allows one writer per file, and the pipeline is that writer): it watches ``CURRENT`` and swaps
its in-memory copy (:class:`PublishedFeatures`) when it moves. A tenant whose features failed
their checks keeps serving its last good snapshot. ``<id>`` is a hash of the files' bytes, so
publishing unchanged features changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.core import atomic, tenant_parquet
from ml.core.settings import Settings
from ml.core.warehouse import scalar

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

KEEP = 3  # snapshots per tenant; older ones are removed (a reader holds its data in memory)


@dataclass(frozen=True)
class OnlineMart:
    """How one mart is published and held in memory.

    ``key`` set: an :class:`OnlineTable` of the numeric columns, rows grouped by key (one or
    many per key, e.g. a user's candidates), with ``item`` ids per row when given. ``key`` None: a
    list of ``item`` ids in ``order_by`` order, duplicates dropped (e.g. the cold-start list).
    """

    order_by: str
    key: str | None = "user_id"
    item: str | None = None


def publish_tenant(
    con: duckdb.DuckDBPyConnection, settings: Settings, region: str, tenant_id: str, marts: dict[str, OnlineMart]
) -> dict[str, Any]:
    """Copy one tenant's online marts out of an open (read-only) warehouse connection.

    Returns the snapshot's metadata (``snapshot_id``, ``rows`` per mart, ``serving_cutoff``, ...).
    """
    store = settings.stores.published
    root = store.tenant_dir(region, tenant_id)
    root.mkdir(parents=True, exist_ok=True)
    tmp = atomic.staging_dir(root)
    rows = {}
    sealed = tenant_parquet.copy_options(con, settings, tenant_id)  # a silo tenant's files are encrypted
    for mart, spec in sorted(marts.items()):
        rows[mart] = scalar(
            con.execute(
                f"copy (select * from {mart} where tenant_id = $tenant order by {spec.order_by}) "
                f"to '{tmp / f'{mart}.parquet'}' (format parquet, compression zstd{sealed})",
                {"tenant": tenant_id},
            )
        )
    cutoff = scalar(con.execute("select max(cutoff_date) from int_feature_cutoffs where tenant_id = ?", [tenant_id]))
    meta = {
        "tenant_id": tenant_id,
        "region": region,
        "snapshot_id": None,  # named by _commit
        "rows": rows,
        "serving_cutoff": str(cutoff) if cutoff else None,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta = _commit(settings, region, tenant_id, tmp, meta)
    snapshot_id = str(meta["snapshot_id"])
    try:
        old = current(settings, region, tenant_id)
    except PointerError:  # an unreadable pointer: this one replaces it
        old = None
    if old is None or old["snapshot_id"] != snapshot_id:
        atomic.write_json(store.pointer(region, tenant_id), meta, indent=None)  # readers see old or new, never half
    _prune(root, keep=snapshot_id)
    return meta


def _commit(settings: Settings, region: str, tenant_id: str, tmp: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Name a filled staging folder by its content and commit it; ``meta`` with its ``snapshot_id``.

    The id is the first 16 hex digits of SHA-256 over each mart's name and content (the file's
    bytes; a silo tenant's encrypted file's rows, :func:`ml.core.tenant_parquet.content_digest`), in
    name order: publishing the same features again names the same folder (and changes nothing).
    """
    digest = hashlib.sha256()
    for path in sorted(tmp.glob("*.parquet")):
        sealed = tenant_parquet.is_encrypted(path)
        digest.update(path.stem.encode())
        digest.update(tenant_parquet.content_digest(path, settings, tenant_id) if sealed else path.read_bytes())
    meta = {**meta, "snapshot_id": digest.hexdigest()[:16]}
    store = settings.stores.published
    atomic.write_json(tmp / store.meta_name, meta)
    atomic.commit_dir(tmp, store.snapshot_dir(region, tenant_id, meta["snapshot_id"]))
    return meta


class PointerError(ValueError):
    """A tenant's ``CURRENT`` that cannot be read (truncated, not JSON, no ``snapshot_id``, not readable): one
    tenant's problem, which the next publish of that tenant replaces. Its message is the cause's (type: text)."""


def current(settings: Settings, region: str, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's published snapshot (``path``, ``snapshot_id``, ``serving_cutoff``, ...), or None.

    Raises :class:`PointerError` when its ``CURRENT`` exists but cannot be read."""
    pointer = settings.stores.published.pointer(region, tenant_id)
    try:
        meta = json.loads(pointer.read_text())
        meta["path"] = str(pointer.parent / meta["snapshot_id"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PointerError(f"{type(exc).__name__}: {exc}") from exc
    return meta


def older(settings: Settings, region: str, tenant_id: str, than: str) -> list[dict[str, Any]]:
    """The tenant's other published snapshots on disk (metadata with ``path``), newest first: what
    the API falls back to when the one ``CURRENT`` names does not load. Folders without readable
    metadata are left out."""
    store = settings.stores.published
    root = store.tenant_dir(region, tenant_id)
    out = []
    for folder in root.iterdir() if root.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith(".") or folder.name == than:
            continue
        try:
            meta = json.loads((folder / store.meta_name).read_text())
        except (OSError, ValueError):
            continue
        out.append(meta | {"path": str(folder)})
    return sorted(out, key=lambda m: (m.get("published_at") or "", m["snapshot_id"]), reverse=True)


def republish_without(settings: Settings, region: str, tenant_id: str, user_id: str) -> int:
    """Rewrite each of the tenant's published snapshots that holds rows of ``user_id`` without them,
    under a new id (:func:`_commit`), and move ``CURRENT`` to it when it was current, so a running
    API swaps its in-memory copy. For :mod:`ml.ops.user_erasure`. Returns the rows removed."""

    from ml.core.erased_users import without_user

    store = settings.stores.published
    was = current(settings, region, tenant_id)
    removed = 0
    for meta in reversed(older(settings, region, tenant_id, than="")):  # oldest first: CURRENT's last
        folder = Path(meta["path"])
        tmp = atomic.staging_dir(folder.parent)
        gone = 0
        for path in sorted(folder.glob("*.parquet")):
            table, n = without_user(tenant_parquet.read_table(path, settings, tenant_id), user_id)
            if n:
                gone, meta["rows"][path.stem] = gone + n, table.num_rows
            tenant_parquet.write_table(table, tmp / path.name, settings, tenant_id)
        if not gone:
            shutil.rmtree(tmp)
            continue
        removed += gone
        meta = {k: v for k, v in meta.items() if k != "path"}
        meta = _commit(settings, region, tenant_id, tmp, meta | {"erased_users": int(meta.get("erased_users", 0)) + 1})
        if was is not None and folder.name == was["snapshot_id"]:
            atomic.write_json(store.pointer(region, tenant_id), meta, indent=None)
        shutil.rmtree(folder)
    return removed


def _prune(root: Path, keep: str) -> None:
    snaps = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime
    )
    for p in snaps[:-KEEP]:
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    atomic.remove_stale_staging(root)


# ------------------------------------------------------------------ reading, for the API


@dataclass
class OnlineTable:
    """One keyed mart laid out for per-request lookups: numeric columns as a float32 matrix.

    Ids are fixed-width unicode arrays, not object arrays: half a million item ids would otherwise
    be Python objects that every full garbage collection walks (100+ ms pauses under load).
    """

    columns: dict[str, int]  # numeric column -> index in ``matrix``
    keys: np.ndarray  # sorted distinct keys
    offsets: np.ndarray  # rows of keys[i] are offsets[i]:offsets[i+1]
    items: np.ndarray | None  # item id per row, when the mart has one
    matrix: np.ndarray  # float32, rows x numeric columns

    def rows(self, key: str) -> slice | None:
        """The rows of ``key``, or None for an unknown key."""
        i = int(np.searchsorted(self.keys, key))
        if i >= len(self.keys) or self.keys[i] != key:
            return None
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    @classmethod
    def from_arrow(cls, table: pa.Table, key: str, item: str | None) -> OnlineTable:
        """From a table sorted by ``key`` (as :func:`publish_tenant` writes it)."""
        numeric = [f.name for f in table.schema if _is_number(f.type)]
        key_col = table.column(key).to_numpy(zero_copy_only=False).astype(str)
        n = len(key_col)
        change = np.flatnonzero(key_col[1:] != key_col[:-1]) + 1 if n else np.array([], dtype=np.int64)
        starts = np.concatenate([[0], change]).astype(np.int64) if n else np.array([], dtype=np.int64)
        if numeric and n:
            matrix = np.column_stack(
                [table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in numeric]
            )
        else:
            matrix = np.zeros((n, len(numeric)), dtype=np.float32)
        return cls(
            columns={c: i for i, c in enumerate(numeric)},
            keys=key_col[starts] if n else np.array([], dtype=str),
            offsets=np.concatenate([starts, [n]]).astype(np.int64),
            items=table.column(item).to_numpy(zero_copy_only=False).astype(str) if item else None,
            matrix=matrix,
        )


@dataclass
class PublishedFeatures:
    """One tenant's published snapshot in memory: keyed tables and item lists, by mart."""

    snapshot_id: str
    serving_cutoff: str | None
    tables: dict[str, OnlineTable]
    lists: dict[str, list[str]]
    published_at: str | None = None

    @classmethod
    def load(cls, meta: dict[str, Any], marts: dict[str, OnlineMart], settings: Settings) -> PublishedFeatures:
        """Read the marts of one published snapshot, as :func:`current` or :func:`older` describe it
        (``tenant_id``, ``path``, ``snapshot_id``, ``serving_cutoff``).

        Raises:
            FileNotFoundError: a mart's file is missing.
            ml.core.tenant_parquet.TenantKeyError: a silo tenant's files do not open with its key.
        """
        folder = Path(meta["path"])
        tables, lists = {}, {}
        for mart, spec in marts.items():
            table = tenant_parquet.read_table(folder / f"{mart}.parquet", settings, meta["tenant_id"])
            if spec.key is None:
                assert spec.item is not None, f"list mart {mart} needs an item column"
                lists[mart] = list(dict.fromkeys(table.column(spec.item).to_pylist()))
            else:
                tables[mart] = OnlineTable.from_arrow(table, spec.key, spec.item)
        return cls(meta["snapshot_id"], meta.get("serving_cutoff"), tables, lists, meta.get("published_at"))


def _is_number(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)
