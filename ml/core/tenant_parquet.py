"""A tenant's Parquet files: plain for a pool tenant, encrypted with its own key for a silo tenant.

A silo tenant's lake, quarantine, training snapshots and published features are written with
Parquet modular encryption as DuckDB implements it: AES-GCM,
footer and every column under one key (``COPY ... (ENCRYPTION_CONFIG {footer_key: ...})``,
https://duckdb.org/docs/stable/data/parquet/encryption). The file starts and ends with ``PARE``
instead of ``PAR1``; without the key it yields no schema, no statistics and no value.

The key is derived from the tenant's key (:func:`ml.core.tenant_keys.silo_key`, the one that
encrypts its warehouse) with HKDF-SHA256 (RFC 5869, ``info = b"tenantflow parquet v1"``), so one
key per tenant is kept and each use has its own.

DuckDB 1.4.4 and pyarrow 25 do not read each other's encrypted files (measured both ways with
the same 256-bit key: "Computed AES tag differs" / "Failed decryption finalization"), and dbt
reads through DuckDB, so every encrypted file is written and read through DuckDB here; plain
files stay pyarrow's. Readers decide by the file's magic, so files written before a tenant's
encryption still read.

Encrypted bytes differ on every write (random nonces): a content id over an encrypted file
(:func:`content_digest`) hashes its decrypted rows, not its bytes.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.settings import Settings

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

MAGIC_ENCRYPTED = b"PARE"
_INFO = b"tenantflow parquet v1"


class TenantKeyError(RuntimeError):
    """A tenant's encrypted Parquet file cannot be read: no key, or not the key it was written with."""


class KeyUnavailableError(TenantKeyError):
    """The tenant's key could not be had: its key provider failed (a KMS down), answered a malformed key, or has none
    for it (a key being restored). The file was not read: nothing is known to be wrong with it, and the same read
    may succeed once the provider answers."""


def is_encrypted(path: Path) -> bool:
    """Whether a Parquet file is encrypted (its footer too): it starts with ``PARE``."""
    with open(path, "rb") as f:
        return f.read(4) == MAGIC_ENCRYPTED


def derived(tenant_key: str) -> str:
    """The Parquet key derived from a tenant's key (64 hex characters, :func:`ml.core.tenant_keys.silo_key`):
    HKDF-SHA256 (RFC 5869), base64 of 32 bytes. For a caller that already holds the tenant's key."""
    from ml.core.tenant_keys import derive

    return base64.b64encode(derive(tenant_key, _INFO)).decode()


def writer_key(settings: Settings, tenant_id: str) -> str | None:
    """The key a new file of this tenant is written with: a silo tenant's (generated on first use by
    the ``file`` provider), None for a pool tenant (plain Parquet)."""
    key = writer_tenant_key(settings, tenant_id)
    return None if key is None else derived(key)


def writer_tenant_key(settings: Settings, tenant_id: str) -> str | None:
    """A silo tenant's key (64 hex characters) for writing one of its files, generated on first use
    by the ``file`` provider; None for a pool tenant.

    Raises:
        KeyUnavailableError: the provider failed, answered a malformed key, or has none and may not make one (as a
            reader's: :func:`reader_tenant_key`); or it has none but the tenant's files or warehouse were written
            with one (a new key could not read them).
    """
    from ml.core.tenant_keys import silo_key_or_raise
    from ml.core.tenants import TenantStore

    tenant = TenantStore(settings).get(tenant_id)
    if tenant.isolation != "silo":
        return None
    what, without = "the tenant's new files", "cannot be written without it"
    key = silo_key_or_raise(settings, tenant_id, KeyUnavailableError, what, without=without)
    if key is None:  # a first file, or a lost key: never replace a key that files were written with
        written = _encrypted_files(settings, tenant.region, tenant_id)
        if written or settings.stores.warehouse_file(tenant.warehouse_key).exists():
            raise KeyUnavailableError(
                f"tenant {tenant_id}: TENANTFLOW_KEYS_PROVIDER has no key, but the tenant's data was written with "
                f"one ({written[0] if written else 'its warehouse'}); restore the key (see ml/core/tenant_keys.py) "
                "rather than start a new one that could not read them."
            )
        key = silo_key_or_raise(settings, tenant_id, KeyUnavailableError, what, create=True, without=without)
    return key


def _encrypted_files(settings: Settings, region: str, tenant_id: str) -> list[Path]:
    """The first of the tenant's files written with its key: encrypted Parquet, or a sealed landing
    or prediction-log file (its webhook ledger's hashed ids are not looked at)."""
    from ml.core.sealed_files import is_sealed

    stores = settings.stores
    roots = [
        s.tenant_dir(region, tenant_id) for s in (stores.lake, stores.quarantine, stores.snapshots, stores.published)
    ]
    found = [p for r in roots if r.is_dir() for p in sorted(r.rglob("*.parquet")) if is_encrypted(p)][:1]
    sealed = [s.tenant_dir(region, tenant_id) for s in (stores.landing, stores.prediction_log)]
    return found or [p for r in sealed for p in sorted(r.rglob("*")) if p.is_file() and is_sealed(p)][:1]


def key_name(tenant_id: str) -> str:
    """The name a tenant's key is registered under on a DuckDB connection (``tenant_<id>``)."""
    from ml.core.ids import validate_slug

    return f"tenant_{validate_slug(tenant_id)}"


def add_key(con: duckdb.DuckDBPyConnection, tenant_id: str, key: str) -> str:
    """Register the tenant's key on a DuckDB connection made with
    :func:`ml.core.warehouse.encrypted_config` (loading httpfs, whose random engine DuckDB's
    encryption uses); returns the key's name there (``tenant_<id>``), for ``encryption_config``."""
    name = key_name(tenant_id)
    con.load_extension("httpfs")
    con.execute(f"pragma add_parquet_key('{name}', '{_checked(key)}')")
    return name


def copy_options(con: duckdb.DuckDBPyConnection, settings: Settings, tenant_id: str) -> str:
    """The extra ``COPY ... TO 'x.parquet' (format parquet, <this>)`` option for one of the tenant's
    files: ``, encryption_config {...}`` (the key registered on ``con``) for a silo tenant, else ``""``."""
    key = writer_key(settings, tenant_id)
    return "" if key is None else f", encryption_config {{footer_key: '{add_key(con, tenant_id, key)}'}}"


def write_table(table: pa.Table, path: Path, settings: Settings, tenant_id: str, **options: Any) -> None:
    """Write one of the tenant's Parquet files (zstd): pyarrow's ``write_table`` with ``options`` for
    a pool tenant, DuckDB's encrypted ``COPY`` for a silo tenant (``options`` other than compression
    do not apply there)."""
    import pyarrow.parquet as pq

    key = writer_key(settings, tenant_id)
    if key is None:
        pq.write_table(table, path, compression="zstd", **options)
        return
    write_encrypted(table, path, tenant_id, key)


def write_encrypted(table: pa.Table, path: Path, tenant_id: str, key: str) -> None:
    """Write ``table`` as an encrypted Parquet file (zstd) with the tenant's Parquet ``key``
    (:func:`writer_key`)."""
    with _duckdb(path) as con:
        name = add_key(con, tenant_id, key)
        con.register("rows", table)
        con.execute(
            f"copy rows to '{_quoted(path)}' (format parquet, compression zstd, encryption_config {{footer_key: '{name}'}})"
        )


class _Unchanged(Exception):
    """Raised inside :func:`replace` to leave the old file: the new one holds the same rows."""


def replace(table: pa.Table, path: Path, settings: Settings, tenant_id: str, **options: Any) -> bool:
    """Durably and atomically replace one of the tenant's files with ``table`` (:func:`write_table`).

    An encrypted file whose rows did not change is left as it was (a rewrite would change every
    byte, new nonces), so a rerun or backfill that rebuilds the same rows changes no file, as it
    changes no plain file. Returns whether the file was written.
    """
    from ml.core import atomic

    try:
        with atomic.replacing(path, durable=True) as tmp:
            write_table(table, tmp, settings, tenant_id, **options)
            sealed = is_encrypted(tmp) and path.exists() and is_encrypted(path)
            if sealed and content_digest(tmp, settings, tenant_id) == content_digest(path, settings, tenant_id):
                raise _Unchanged
    except _Unchanged:
        return False
    return True


def read_table(path: Path, settings: Settings, tenant_id: str, columns: list[str] | None = None) -> pa.Table:
    """Read one of the tenant's Parquet files, plain or encrypted (decided by the file).

    Raises:
        TenantKeyError: the file is encrypted and the tenant's key provider has no key, or not the
            one it was written with; the message names the tenant, the file and what to do.
    """
    import pyarrow.parquet as pq

    if not is_encrypted(path):
        return pq.read_table(path, columns=columns)
    cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    return _select(settings, tenant_id, path, cols)


def column_names(path: Path, settings: Settings, tenant_id: str) -> list[str]:
    """The columns of one of the tenant's Parquet files (an encrypted one's need the key)."""
    import pyarrow.parquet as pq

    if not is_encrypted(path):
        return list(pq.read_schema(path).names)
    return list(_select(settings, tenant_id, path, "*", "limit 0").column_names)


def num_rows(paths: list[Path], settings: Settings, tenant_id: str) -> int:
    """Rows in some of the tenant's Parquet files, from their footers (the encrypted ones' in one
    DuckDB query, with the key)."""
    import pyarrow.parquet as pq

    sealed = [p for p in paths if is_encrypted(p)]
    plain = sum(int(pq.ParquetFile(p).metadata.num_rows) for p in paths if p not in sealed)
    if not sealed:
        return plain
    return plain + int(_select(settings, tenant_id, sealed, "count(*) as n").column("n")[0].as_py())


def content_digest(path: Path, settings: Settings, tenant_id: str) -> bytes:
    """SHA-256 naming a file's content: of its bytes when plain; when encrypted (its bytes change on
    every write), of its rows written again as plain, uncompressed Parquet by pyarrow, which stores
    no value under a null (Arrow IPC would: DuckDB leaves those slots uninitialised, and two reads
    of one file hashed differently)."""
    if not is_encrypted(path):
        return hashlib.sha256(path.read_bytes()).digest()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = read_table(path, settings, tenant_id)
    # DuckDB labels a TIMESTAMPTZ with the process's time zone: the same instants, named in UTC
    utc = [
        pa.field(f.name, pa.timestamp(f.type.unit, "UTC")) if pa.types.is_timestamp(f.type) and f.type.tz else f
        for f in table.schema
    ]
    table = table.cast(pa.schema(utc))
    digest = _Digest()
    with pq.ParquetWriter(digest, table.schema, compression="none", write_statistics=False) as writer:
        writer.write_table(table, row_group_size=1_000_000)
    return digest.sha.digest()


class _Digest:
    """A write-only file object that hashes what is written to it (a Parquet writer's sink)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.closed = False
        self.position = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def reader_tenant_key(settings: Settings, tenant_id: str, path: Path | str) -> str:
    """The key (64 hex characters) that opens ``path``, a file the tenant's key wrote (encrypted Parquet, a sealed
    file): read, never generated.

    Raises:
        KeyUnavailableError: the provider failed, answered a malformed key, or has none for the tenant.
    """
    from ml.core.tenant_keys import silo_key_or_raise

    tenant_key = silo_key_or_raise(settings, tenant_id, KeyUnavailableError, str(path))
    if tenant_key is None:
        raise KeyUnavailableError(
            f"tenant {tenant_id}: {path} was written with the tenant's key and TENANTFLOW_KEYS_PROVIDER has none for "
            "it; restore the tenant's key (see ml/core/tenant_keys.py)."
        )
    return tenant_key


def _reader_key(settings: Settings, tenant_id: str, path: Path | str) -> str:
    return derived(reader_tenant_key(settings, tenant_id, path))


def _select(settings: Settings, tenant_id: str, path: Path | list[Path], columns: str, tail: str = "") -> pa.Table:
    """``select <columns> from <the files> <tail>`` over encrypted files of the tenant, through DuckDB."""
    import duckdb

    paths = path if isinstance(path, list) else [path]
    named = paths[0] if len(paths) == 1 else f"{paths[0].parent} and {len(paths) - 1} more of its files"
    key = _reader_key(settings, tenant_id, named)
    files = ", ".join(f"'{_quoted(p)}'" for p in paths)
    try:
        with _duckdb(paths[0]) as con:
            name = add_key(con, tenant_id, key)
            sql = f"select {columns} from read_parquet([{files}], encryption_config = {{footer_key: '{name}'}}) {tail}"
            return con.execute(sql).fetch_arrow_table()
    except duckdb.InvalidInputException as exc:
        if "right key" not in str(exc) and "AES" not in str(exc):
            raise
        raise TenantKeyError(
            f"tenant {tenant_id}: {named} does not decrypt with the key from TENANTFLOW_KEYS_PROVIDER; restore the "
            "key it was written with (a file of another tenant, moved here, never opens with this one's); a lake "
            "or quarantine file can instead be deleted and its day ingested again from landing."
        ) from exc


def _duckdb(path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for one of a tenant's files: its spill files encrypted, beside the file
    (an in-memory database would spill decrypted rows into the working directory)."""
    import duckdb

    from ml.core.warehouse import encrypted_config

    return duckdb.connect(config={"threads": 1} | encrypted_config(path))


def _checked(key: str) -> str:
    if len(base64.b64decode(key, validate=True)) != 32:
        raise ValueError("a Parquet key is base64 of 32 bytes")
    return key


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
