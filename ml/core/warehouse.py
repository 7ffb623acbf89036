"""Warehouses: the DuckDB files of the feature store, which tenants each holds, and how to open one.

A *warehouse* is one DuckDB file: a region's pool (its ``pool`` tenants, ``tenant_id`` on every
row) or one ``silo`` tenant's own file. DuckDB allows one writing process per file, so every
writer and every reader that must not meet a half-built table (checks, publishing, snapshots,
scoring, monitoring) holds :func:`warehouse_lock` on it; the API never opens a warehouse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.ids import validate_slug
from ml.core.settings import Settings
from ml.core.tenants import Tenant

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Warehouse:
    """One DuckDB file and the tenants whose features it holds."""

    key: str  # "eu/pool" or "us/silo_initech"
    tenants: tuple[str, ...]
    sharing_tenants: tuple[str, ...]

    @property
    def region(self) -> str:
        return self.key.split("/", 1)[0]

    def path(self, settings: Settings) -> Path:
        return settings.stores.warehouse_file(self.key)

    @classmethod
    def from_dict(cls, d: dict) -> Warehouse:
        """Back from ``dataclasses.asdict`` (how DAG tasks pass warehouses through XCom)."""
        return cls(d["key"], tuple(d["tenants"]), tuple(d["sharing_tenants"]))


def warehouse_jobs(tenants: list[Tenant], named: bool, **extra: Any) -> list[dict[str, Any]]:
    """One mapped task's argument per warehouse file of ``tenants``, for a DAG run's plan.

    Each is the :class:`Warehouse`'s fields (:meth:`Warehouse.from_dict` reads them back), ``only``
    (``tenants``' ids when the run ``named`` them, else None: every tenant of the file) and ``extra``.
    """
    only = [t.tenant_id for t in tenants] if named else None
    return [asdict(w) | {"only": only} | extra for w in warehouses(tenants)]


def warehouses(tenants: list[Tenant]) -> list[Warehouse]:
    """The warehouse files of a set of tenants, in a stable order."""
    groups: dict[str, list[Tenant]] = {}
    for t in tenants:
        groups.setdefault(t.warehouse_key, []).append(t)
    return [
        Warehouse(
            key=key,
            tenants=tuple(t.tenant_id for t in group),
            sharing_tenants=tuple(t.tenant_id for t in group if t.share_data),
        )
        for key, group in sorted(groups.items())
    ]


def duckdb_threads(builds_at_once: int) -> int:
    """DuckDB threads for each of ``builds_at_once`` warehouse jobs sharing this machine.

    DuckDB starts one worker per core by default; two builds at once then run four busy threads
    on two cores, and their queries slow each other down more than they gain (10M events, two
    warehouses built at once, back to back: 109 s with 2 threads each, 96 s with 1).
    """
    return max(1, (os.cpu_count() or 1) // max(1, builds_at_once))


@contextmanager
def warehouse_lock(path: Path, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive, cross-process lock on one warehouse file (``<file>.lock``, DuckDB's one-writer rule).

    Raises:
        filelock.Timeout: the file stayed locked for ``timeout`` seconds.
    """
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock"), timeout=timeout):
        yield


def connect(path: Path, *, read_only: bool = False, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a warehouse file (hold :func:`warehouse_lock` around it)."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {"threads": threads or duckdb_threads(1)}
    return duckdb.connect(str(path), read_only=read_only, config=config)


def scalar(result: duckdb.DuckDBPyConnection) -> Any:
    """The single value of a one-row, one-column result (``COPY`` row counts, ``max(...)``)."""
    row = result.fetchone()
    if row is None:
        raise ValueError("the query returned no row")
    return row[0]


def delete_tenant(path: Path, tenant_id: str) -> dict[str, int]:
    """Delete a tenant's rows from every table with a ``tenant_id`` column of a warehouse file, then
    rewrite the file (:func:`rewrite`); hold :func:`warehouse_lock`. Returns rows deleted per table."""
    return _delete_rows(path, "tenant_id", {"tenant_id": validate_slug(tenant_id)})


def delete_user(path: Path, tenant_id: str, user_id: str) -> dict[str, int]:
    """Delete one end user's rows from every table with a ``user_id`` column of a warehouse file
    (only the tenant's, where the table has a ``tenant_id``), then rewrite the file; hold
    :func:`warehouse_lock`. Returns rows deleted per table."""
    return _delete_rows(path, "user_id", {"user_id": user_id, "tenant_id": validate_slug(tenant_id)})


def _delete_rows(path: Path, column: str, where: dict[str, str]) -> dict[str, int]:
    """Delete the rows matching ``where`` (on the columns of it each table has) from every base
    table with ``column``; then :func:`rewrite`. Returns rows deleted per ``schema.table``."""
    rows: dict[str, int] = {}
    con = connect(path)
    try:
        found = con.execute(
            "select c.table_schema, c.table_name, list(c.column_name) from information_schema.columns c "
            "join information_schema.tables t using (table_catalog, table_schema, table_name) "
            "where t.table_type = 'BASE TABLE' and c.table_catalog = current_database() group by all"
        ).fetchall()
        for schema, table, columns in found:
            if column not in columns:
                continue
            match = [c for c in where if c in columns]
            condition = " and ".join(f'"{c}" = ?' for c in match)
            n = scalar(con.execute(f'delete from "{schema}"."{table}" where {condition}', [where[c] for c in match]))
            if n:
                rows[f"{schema}.{table}"] = int(n)
    finally:
        con.close()
    rewrite(path)
    return rows


def rewrite(path: Path) -> None:
    """Copy a DuckDB database into a fresh file and put it in its place: DuckDB leaves deleted
    rows' bytes in free blocks until they are reused; the copy holds only live rows."""
    import duckdb

    fresh = path.with_name(path.stem + ".rewrite.duckdb")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"attach '{path}' as old (read_only)")
        con.execute(f"attach '{fresh}' as fresh")
        con.execute("copy from database old to fresh")
        con.execute("detach old")
        con.execute("detach fresh")
    finally:
        con.close()
    fresh.replace(path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
