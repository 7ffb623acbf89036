"""Warehouses: the DuckDB files of the feature store, which tenants each holds, and how to open one.

A *warehouse* is one DuckDB file: a region's pool (its ``pool`` tenants, ``tenant_id`` on every
row) or one ``silo`` tenant's own file. DuckDB allows one writing process per file, so every
writer and every reader that must not meet a half-built table (checks, publishing, snapshots,
scoring, monitoring) holds :func:`warehouse_lock` on it; the API never opens a warehouse.

A silo tenant's file is encrypted (DuckDB's AES-GCM database encryption) with the tenant's own
key (:mod:`ml.core.tenant_keys`): :func:`connect` attaches it with the key, so callers see the
same unqualified tables either way. Writing an encrypted database needs DuckDB's ``httpfs``
extension (its OpenSSL; the built-in crypto module reads only), loaded from the
``duckdb-ext-httpfs`` package, never downloaded.
"""

from __future__ import annotations

import logging
import os
import time
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

log = logging.getLogger(__name__)


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


def warehouses_holding(selected: list[Tenant], every: list[Tenant]) -> list[Warehouse]:
    """The warehouse files ``selected`` tenants live in, each with *all* its tenants (from ``every``).

    What a feature build takes: dbt rebuilds a file's table marts whole from the tenants it is
    given, so a build of a shared (pool) file for some of its tenants would leave only theirs.
    """
    keys = {t.warehouse_key for t in selected}
    return [w for w in warehouses(every) if w.key in keys]


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


MEMORY_SHARE = 0.75  # of the machine's memory, split between the builds at once as the cores are
MEMORY_LIMIT_VARIABLE = "TENANTFLOW_DUCKDB_MEMORY_LIMIT"


def duckdb_memory_limit(threads: int) -> str:
    """DuckDB's ``memory_limit`` for a warehouse build running ``threads`` of this machine's cores:
    the same share of :data:`MEMORY_SHARE` of its memory (the cgroup's limit where lower), in MiB,
    e.g. ``"9039MiB"`` for each of two builds on 23.5 GiB and two cores, ``"18078MiB"`` for one.
    ``TENANTFLOW_DUCKDB_MEMORY_LIMIT`` (any DuckDB size, e.g. ``12GB``) overrides it. DuckDB's own default
    (80% of memory in every process) lets two builds at once oversubscribe the machine; the fixed 6 GB
    before failed the Online Retail United Kingdom's co-visitation model on a 24 GiB machine
    (``Out of Memory Error``, 5.5 GiB used; it peaked at 7.4 GB given room)."""
    if configured := os.environ.get(MEMORY_LIMIT_VARIABLE):
        return configured
    share = min(1.0, max(1, threads) / (os.cpu_count() or 1))
    return f"{int(MEMORY_SHARE * share * _memory_bytes() / 2**20)}MiB"


def _share(threads: int | None) -> dict[str, str | int]:
    """A warehouse connection's DuckDB ``threads`` (default :func:`duckdb_threads` of one build) and their share of
    memory (:func:`duckdb_memory_limit`), for the checks, the publish and the copies as for the build: the sorted copy
    of a 300,000-visitor clickstream's serving candidates took 9.2 GB under DuckDB's own default (80% of memory),
    1.55 GB in the same time under 1 GB (benchmarks/README.md, *A clickstream's features build*)."""
    threads = threads or duckdb_threads(1)
    return {"threads": threads, "memory_limit": duckdb_memory_limit(threads)}


def _memory_bytes() -> int:
    """The memory this process may use: physical memory, or its cgroup's limit where lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(limit).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total


def out_of_memory_hint(message: str | None, limit: str) -> str:
    """What to do about a dbt node that failed with DuckDB's ``Out of Memory Error`` (``""`` for any other
    failure): the limit it had and the setting that raises it."""
    if not message or "Out of Memory" not in message:
        return ""
    return (
        f"DuckDB ran out of its memory limit ({limit}): set {MEMORY_LIMIT_VARIABLE} higher (e.g. 12GB) "
        "and build again, or build one warehouse at a time (`tenantflow features build --tenant <id>`)"
    )


@contextmanager
def warehouse_lock(path: Path, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive, cross-process lock on one warehouse file (``<file>.lock``, DuckDB's one-writer rule).

    A caller that finds it held logs that it waits (INFO, naming the file), then how long it waited.

    Raises:
        filelock.Timeout: the file stayed locked for ``timeout`` seconds.
    """
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=timeout)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for the lock on warehouse %s: another process is writing it", path.name)
        t0 = time.monotonic()
        lock.acquire()
        log.info("got the lock on warehouse %s after %.1f s", path.name, time.monotonic() - t0)
    try:
        yield
    finally:
        lock.release()


class WarehouseKeyError(RuntimeError):
    """A silo tenant's warehouse cannot be opened with the key its provider gives."""


def extension_directory() -> str:
    """Where the ``duckdb-ext-httpfs`` package keeps DuckDB's httpfs extension (``INSTALL`` and
    ``LOAD httpfs`` find it there, offline)."""
    from importlib.metadata import distribution

    return str(distribution("duckdb-ext-httpfs").locate_file("duckdb_ext/extensions"))


def catalog_name(path: Path) -> str:
    """The catalog a warehouse file is attached as: its stem, as an identifier (``silo_my_co``)."""
    return path.stem.replace("-", "_")


def connect(path: Path, *, read_only: bool = False, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a warehouse file (hold :func:`warehouse_lock` around it), on ``threads`` threads
    (:func:`duckdb_threads`) and their share of memory (:func:`duckdb_memory_limit`).

    A silo tenant's file is attached with its key and made the default catalog, with the key its
    lake files are read with (the lake view reads them) registered; a writer creates
    the key (``file`` provider) and encrypts a file written before encryption existed, which a
    reader still opens as it is.

    Raises:
        WarehouseKeyError: the tenant's key does not open its file (wrong or rotated key), or its
            provider has none for an encrypted file; the message names the tenant and what to do.
    """
    import duckdb

    from ml.core import tenant_parquet
    from ml.core.layout import silo_tenant_of

    config: dict[str, str | bool | int | float | list[str]] = dict(_share(threads))
    tenant = silo_tenant_of(path)
    if tenant is None:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    encrypted = path.exists() and _encrypted(path)
    key = _silo_key(tenant, create=not read_only and not encrypted)  # a lost key is never replaced
    if key is None and encrypted:
        raise WarehouseKeyError(
            f"tenant {tenant}: its warehouse {path} is encrypted and TENANTFLOW_KEYS_PROVIDER has no key "
            f"for it; restore the tenant's key (see ml/core/tenant_keys.py)."
        )
    if key is None or (read_only and path.exists() and not encrypted):  # written before encryption
        return duckdb.connect(str(path), read_only=read_only, config=config)
    if path.exists() and not encrypted:
        _copy_database(path, None, key)
    con = duckdb.connect(config=config | encrypted_config(path))
    try:
        if not read_only:
            con.load_extension("httpfs")
        con.execute(_attach_sql(path, catalog_name(path), key, read_only))
        con.execute(f'use "{catalog_name(path)}"')
        tenant_parquet.add_key(con, tenant, tenant_parquet.derived(key))  # the lake view reads its encrypted lake
    except duckdb.Error as exc:
        con.close()
        if "encryption key" not in str(exc).lower():  # not the key's fault (a lock held elsewhere, a torn file)
            raise
        raise WarehouseKeyError(
            f"tenant {tenant}: its warehouse {path} does not open with the key from TENANTFLOW_KEYS_PROVIDER "
            f"({exc}); restore the tenant's key, or move the file away and rebuild it from the lake "
            f"(`tenantflow features build --tenant {tenant}`)."
        ) from exc
    return con


def encrypted_config(path: Path) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB settings of a connection that reads or writes an encrypted file (a warehouse, or a
    tenant's Parquet: :mod:`ml.core.tenant_parquet`): httpfs's folder, and spill files encrypted
    too, beside the file (a ``:memory:`` connection would spill into the working directory, in
    plain bytes)."""
    spill = path.with_name(path.name + ".tmp")
    return {"extension_directory": extension_directory(), "temp_directory": str(spill), "temp_file_encryption": True}


def _silo_key(tenant_id: str, create: bool) -> str | None:
    """The tenant's key; a provider that cannot answer it is this tenant's key problem (:class:`WarehouseKeyError`)."""
    from ml.core.settings import get_settings
    from ml.core.tenant_keys import silo_key_or_raise

    return silo_key_or_raise(get_settings(), tenant_id, WarehouseKeyError, "its warehouse", create=create)


def _encrypted(path: Path) -> bool:
    """Whether a DuckDB file is encrypted (asks DuckDB: attaching it without a key says so)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(_attach_sql(path, "probe", None, True))
        return False
    except duckdb.Error as exc:
        if "without a key" in str(exc):
            return True
        raise
    finally:
        con.close()


def _attach_sql(path: Path, alias: str, key: str | None, read_only: bool) -> str:
    options = [f"ENCRYPTION_KEY '{key}'"] if key else []  # 64 hex characters (tenant_keys.silo_key)
    options += ["READ_ONLY"] if read_only else []
    quoted = str(path).replace("'", "''")
    return f"attach '{quoted}' as \"{alias}\"" + (f" ({', '.join(options)})" if options else "")


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
    rows' bytes in free blocks until they are reused; the copy holds only live rows (a silo
    tenant's stays encrypted with its key)."""
    from ml.core.layout import silo_tenant_of

    tenant = silo_tenant_of(path)
    key = _silo_key(tenant, create=False) if tenant else None
    _copy_database(path, key if key and _encrypted(path) else None, key)


def _copy_database(path: Path, old_key: str | None, new_key: str | None) -> None:
    """Copy ``path`` (opened with ``old_key``) into a fresh file (encrypted with ``new_key``) and
    put it in its place; the caller holds :func:`warehouse_lock`."""
    import duckdb

    fresh = path.with_name(path.stem + ".rewrite.duckdb")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect(config=_share(None) | (encrypted_config(path) if new_key else {}))
    try:
        if new_key or old_key:
            con.load_extension("httpfs")
        # written back first: a crash after the swap must not leave a WAL to replay onto the copy
        con.execute(_attach_sql(path, "old", old_key, False))
        con.execute("checkpoint old")
        con.execute(_attach_sql(fresh, "fresh", new_key, False))
        con.execute("copy from database old to fresh")
        con.execute("detach old")
        con.execute("detach fresh")
    finally:
        con.close()
    fresh.replace(path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
